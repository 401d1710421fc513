#!/usr/bin/env bash
# The container check that .ci/run runs on every run, once for this machine's
# architecture and once for arm64 under QEMU: builds the unmodified
# Dockerfile with podman on the base image (a stand-in where the official one
# cannot be pulled), keeps the image lean, and runs the smoke test that the
# workflow runs with docker. Exits non-zero if any step fails.
# Usage: check.sh [amd64|arm64]   (the host's architecture by default)
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=.ci/container/env.sh
source .ci/container/env.sh

# What the image may add to the base (README, Container).
MAX_ADDED_MB=25
native=$(case "$(uname -m)" in aarch64) echo arm64 ;; *) echo amd64 ;; esac)
arch=${1:-$native}
version=$(sed -n 's/^ARG DENO_VERSION=//p' Dockerfile)
# The base for this architecture; the official name is a list of them.
base="localhost/ip-timestamp-ci/deno:debian-${version}-${arch}"
# A tag of this run's own: runs in parallel share podman's storage.
image="localhost/ip-timestamp:ci-${arch}-$$"
cache="localhost/ip-timestamp:ci-cache"
[ "$arch" = "$native" ] || cache+="-$arch"
log=$(mktemp)
# The last image built stays tagged, so that its layers (the build cache)
# outlive this run's tag.
trap 'podman tag "$image" "$cache" >/dev/null 2>&1 || true
  podman untag "$image" "$image" >/dev/null 2>&1 || true; rm -f "$log"' EXIT

t0=$SECONDS
[ "$arch" = "$native" ] || .ci/container/binfmt.sh "$arch"
# Two runs must not build the stand-in at once.
flock "$CI_CACHE/stand-in.lock" .ci/container/base_image.sh "$version" "$arch"
t1=$SECONDS
if ! podman build --platform "linux/$arch" --pull=never --format docker \
  --build-arg VERSION="$(jq -r .version deno.json)" -t "$image" . >"$log" 2>&1; then
  tail -40 "$log"
  echo "container: the Dockerfile does not build for linux/$arch"
  exit 1
fi
t2=$SECONDS
built=$(podman image inspect -f '{{.Architecture}}' "$image")
[ "$built" = "$arch" ] || {
  echo "container: asked for linux/$arch, built $built"
  exit 1
}
added=$((($(podman image inspect -f '{{.Size}}' "$image") -
  $(podman image inspect -f '{{.Size}}' "$base")) / 1000000))
echo "container: the $arch image adds ${added} MB to its base (at most ${MAX_ADDED_MB})"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$image" |
  grep -v '^0 B' | cut -c1-110
[ "$added" -le "$MAX_ADDED_MB" ] || {
  echo "container: the $arch image is ${added} MB over its base, more than ${MAX_ADDED_MB}"
  exit 1
}
# Containers left by a smoke test that was killed outright (its pid is in
# their names) would pile up.
for c in $(podman ps -a --format '{{.Names}}' | grep -E '^ip-timestamp-(smoke|supervision|limits)-'); do
  pid=${c#ip-timestamp-*-}
  kill -0 "${pid%%-*}" 2>/dev/null || podman rm -f "$c" >/dev/null 2>&1 || true
done
# Under emulation the smoke test stretches its time limits and the memory
# limit (and only those); the supervision and limits checks measure CPU and
# memory, which QEMU's own would swamp: they run natively only.
.ci/container/smoke.sh podman "$image"
if [ "$arch" = "$native" ]; then
  .ci/container/supervision.sh podman "$image"
  .ci/container/limits.sh podman "$image"
fi
t3=$SECONDS
# Old build stages beyond a day are not worth their space.
podman image prune -f --filter until=24h >/dev/null 2>&1 || true
echo "container ($arch): base $((t1 - t0)) s, build $((t2 - t1)) s, smoke $((t3 - t2)) s"
