#!/usr/bin/env bash
# The container check that .ci/run runs on every run: builds the unmodified
# Dockerfile with podman on the base image (a stand-in where the official one
# cannot be pulled), keeps the image lean, and runs the smoke test that the
# workflow runs with docker. Exits non-zero if any step fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
# shellcheck source=.ci/container/env.sh
source .ci/container/env.sh

# What the image may add to the base (README, Container).
MAX_ADDED_MB=25
version=$(sed -n 's/^ARG DENO_VERSION=//p' Dockerfile)
base="docker.io/denoland/deno:debian-${version}"
# A tag of this run's own: runs in parallel share podman's storage.
image="localhost/ip-timestamp:ci-$$"
log=$(mktemp)
# The last image built stays tagged, so that its layers (the build cache)
# outlive this run's tag.
trap 'podman tag "$image" localhost/ip-timestamp:ci-cache >/dev/null 2>&1
  podman untag "$image" "$image" >/dev/null 2>&1; rm -f "$log"' EXIT

t0=$SECONDS
# Two runs must not build the stand-in at once.
flock "$CI_CACHE/stand-in.lock" .ci/container/base_image.sh "$version"
t1=$SECONDS
if ! podman build --pull=never --format docker -t "$image" . >"$log" 2>&1; then
  tail -40 "$log"
  echo "container: the Dockerfile does not build"
  exit 1
fi
t2=$SECONDS
added=$((($(podman image inspect -f '{{.Size}}' "$image") -
  $(podman image inspect -f '{{.Size}}' "$base")) / 1000000))
echo "container: the image adds ${added} MB to ${base} (at most ${MAX_ADDED_MB})"
podman history --format '{{.Size}}\t{{.CreatedBy}}' "$image" |
  grep -v '^0 B' | cut -c1-110
[ "$added" -le "$MAX_ADDED_MB" ] || {
  echo "container: the image is ${added} MB over its base, more than ${MAX_ADDED_MB}"
  exit 1
}
# Containers left by a smoke test that was killed outright (its pid is in
# their names) would pile up.
for c in $(podman ps -a --format '{{.Names}}' | grep '^ip-timestamp-smoke-'); do
  pid=${c#ip-timestamp-smoke-}
  kill -0 "${pid%%-*}" 2>/dev/null || podman rm -f "$c" >/dev/null 2>&1 || true
done
.ci/container/smoke.sh podman "$image"
.ci/container/supervision.sh podman "$image"
.ci/container/limits.sh podman "$image"
t3=$SECONDS
# Old build stages beyond a day are not worth their space.
podman image prune -f --filter until=24h >/dev/null 2>&1 || true
echo "container: base $((t1 - t0)) s, build $((t2 - t1)) s, smoke and supervision $((t3 - t2)) s"
