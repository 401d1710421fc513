#!/usr/bin/env bash
# Builds a stand-in for the official denoland/deno:debian-$DENO_VERSION image
# where it cannot be pulled (this CI is offline but for Debian's archive and
# the npm registry), for one architecture (amd64 or arm64, the host's by
# default), so the project's Dockerfile builds unmodified with
# `podman build --pull=never [--platform linux/ARCH]`.
#
# Like the official image (github.com/denoland/deno_docker, debian.dockerfile):
# a slim Debian trixie, /usr/bin/deno, a bare /tini, user and group deno
# (1993), /deno-dir owned by it, its ENV, and ENTRYPOINT
# /tini -- docker-entrypoint.sh. Here deno comes from its npm package and
# tini from Debian's. One addition: when the npm registry is reached through
# a TLS-intercepting proxy, DENO_CERT names that CA, so that build stages can
# fetch npm packages; it lives in this stand-in only, never in the project.
# A foreign architecture is built and run under QEMU (.ci/container/binfmt.sh).
#
# Each architecture's image has a name of its own,
# localhost/ip-timestamp-ci/deno:debian-VERSION-ARCH; the official name is a
# manifest list of those that are here: podman picks a base per platform only
# from a list (with a plain image under that name, another platform's build
# fails with "image not known"), and the native build keeps working with it.
#
# Uses the official image when it is here or can be pulled. The stand-in is
# cached in podman's storage: rebuilt only when this script, the Deno version,
# the architecture or that CA changes. Run it under flock: two runs must not
# build at once. Usage: base_image.sh DENO_VERSION [amd64|arm64]
#
# It uses whatever podman storage its environment names: CI's own when
# check.sh runs it (env.sh), else the caller's, so that plain `podman build
# --pull=never` finds the base afterwards. As root (mmdebstrap --mode=root).
set -euo pipefail

version=${1:?usage: base_image.sh DENO_VERSION [amd64|arm64]}
case "${2:-$(uname -m)}" in
  amd64 | x86_64) arch=amd64 npm_platform=linux-x64-glibc variant="" ;;
  arm64 | aarch64) arch=arm64 npm_platform=linux-arm64-glibc variant=v8 ;;
  *) echo "base_image.sh: no stand-in for ${2:-$(uname -m)} (amd64 or arm64)" >&2; exit 2 ;;
esac
official="docker.io/denoland/deno:debian-${version}"
own="localhost/ip-timestamp-ci/deno:debian-${version}"
image="$own-$arch"
ca=${SSL_CERT_FILE:-}
[ -n "$ca" ] && [ -f "$ca" ] || ca=""
key=$(cat "$0" <(echo "$version $arch") ${ca:+"$ca"} | sha256sum | cut -c1-16)
label=org.ip-timestamp.ci.stand-in

# The official name as a manifest list of every architecture here. Made under
# a name of its own, then renamed in one step: a build running meanwhile
# always finds the name.
publish_list() {
  local want have list a
  want=$(for a in amd64 arm64; do
    podman image inspect -f '{{.Digest}}' "$own-$a" 2>/dev/null || true
  done | sort)
  if podman manifest exists "$official"; then
    have=$(podman manifest inspect "$official" | jq -r '.manifests[].digest' | sort)
    [ "$have" = "$want" ] && return 0
  fi
  list="localhost/ip-timestamp-ci/deno-list:$$"
  podman manifest create "$list" >/dev/null
  for a in amd64 arm64; do
    if podman image exists "$own-$a"; then
      podman manifest add "$list" "containers-storage:$own-$a" >/dev/null
    fi
  done
  podman tag "$list" "$official"
  podman manifest rm "$list" >/dev/null
  echo "base $official: a manifest list of $(wc -w <<<"$want") architecture(s)"
}

# An image of ours is here (or the official one, kept under our name).
if podman image exists "$image"; then
  found=$(podman image inspect --format "{{index .Labels \"$label\"}}" "$image")
  if [ -z "$found" ]; then
    echo "base $official ($arch): the official image, already here"
    publish_list
    exit 0
  elif [ "$found" = "$key" ]; then
    echo "base $official ($arch): the stand-in, cached ($key)"
    publish_list
    exit 0
  fi
elif timeout 300 podman pull --quiet --platform "linux/$arch" "$official" >/dev/null 2>&1; then
  podman tag "$official" "$image"
  echo "base $official ($arch): the official image, pulled"
  publish_list
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@deno/${npm_platform}@${version}" >/dev/null)
tar -xzf "$work"/deno-*.tgz -C "$work" package/deno
[ -n "$ca" ] && cp "$ca" "$work/registry-ca.pem"

# Behaves as the official docker-entrypoint.sh: an option or a deno
# subcommand runs deno, anything else is executed as given.
cat >"$work/docker-entrypoint.sh" <<'ENTRY'
#!/bin/sh
set -e
case "$1" in
  -*) exec deno "$@" ;;
  add | bench | bundle | cache | check | clean | compile | completions | coverage | doc | eval | fmt | help | info | init | install | jupyter | lint | lsp | outdated | publish | remove | repl | run | serve | task | test | types | uninstall | update | upgrade | vendor)
    exec deno "$@" ;;
esac
exec "$@"
ENTRY

# debian:stable-slim's dpkg filters (no docs, man pages or translations)
# and apt settings (no package cache or .debs left behind, no
# translations); mmdebstrap keeps both in the image, as slim does.
clean='rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true'
slim=(
  "--aptopt=DPkg::Post-Invoke { \"$clean\"; }"
  "--aptopt=APT::Update::Post-Invoke { \"$clean\"; }"
  '--aptopt=Dir::Cache::pkgcache ""'
  '--aptopt=Dir::Cache::srcpkgcache ""'
  '--aptopt=Acquire::Languages "none"'
  '--aptopt=Acquire::GzipIndexes "true"'
  '--aptopt=APT::AutoRemove::SuggestsImportant "false"'
)
for dir in doc man info locale lintian linda; do
  slim+=("--dpkgopt=path-exclude=/usr/share/$dir/*")
done
slim+=("--dpkgopt=path-include=/usr/share/doc/*/copyright")

changes=(
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  --change "ENV DENO_USE_CGROUPS=1"
  --change "ENV DENO_DIR=/deno-dir/"
  --change "ENV DENO_INSTALL_ROOT=/usr/local"
  --change "ENV DENO_VERSION=${version}"
  --change 'ENTRYPOINT ["/tini", "--", "docker-entrypoint.sh"]'
  --change 'CMD ["eval", "console.log('"'"'Welcome to Deno!'"'"')"]'
  --change "LABEL ${label}=${key}"
)
[ -n "$ca" ] && changes+=(--change "ENV DENO_CERT=/etc/ip-timestamp-ci/registry-ca.pem")

started=$(date +%s)
# The hooks' "$1" is the new root, expanded by mmdebstrap, not here. deno's
# version is checked inside it: the host has no loader for a foreign
# architecture (QEMU runs it there).
# shellcheck disable=SC2016
mmdebstrap --quiet --variant=minbase --mode=root --format=tar --arch="$arch" --include=tini \
  "${slim[@]}" \
  --customize-hook='cp "$1/usr/bin/tini" "$1/tini" && chroot "$1" dpkg --purge tini >/dev/null' \
  --customize-hook='chroot "$1" useradd --uid 1993 --user-group deno' \
  --customize-hook='mkdir "$1/deno-dir" && chroot "$1" chown deno:deno /deno-dir' \
  --customize-hook="install -m 755 '$work/package/deno' \"\$1/usr/bin/deno\"" \
  --customize-hook="chroot \"\$1\" deno --version | grep -q '^deno ${version} ' || { echo 'the npm package did not hold deno ${version} for ${arch}' >&2; exit 1; }" \
  --customize-hook="install -m 755 '$work/docker-entrypoint.sh' \"\$1/usr/local/bin/docker-entrypoint.sh\"" \
  --customize-hook="if [ -f '$work/registry-ca.pem' ]; then install -D -m 644 '$work/registry-ca.pem' \"\$1/etc/ip-timestamp-ci/registry-ca.pem\"; fi" \
  trixie - \
  "deb http://deb.debian.org/debian trixie main" \
  "deb http://deb.debian.org/debian trixie-updates main" \
  "deb http://deb.debian.org/debian-security trixie-security main" |
  podman import --quiet --arch "$arch" ${variant:+--variant "$variant"} "${changes[@]}" - "$image" >/dev/null
echo "base $official ($arch): the stand-in, built in $(($(date +%s) - started)) s ($key)"
publish_list
