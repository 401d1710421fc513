#!/usr/bin/env bash
# Builds a stand-in for the official denoland/deno:debian-$DENO_VERSION image
# where it cannot be pulled (this CI is offline but for Debian's archive and
# the npm registry), and tags it with exactly that name so the project's
# Dockerfile builds unmodified with `podman build --pull=never`.
#
# Like the official image (github.com/denoland/deno_docker, debian.dockerfile):
# a slim Debian trixie, /usr/bin/deno, a bare /tini, user and group deno
# (1993), /deno-dir owned by it, its ENV, and ENTRYPOINT
# /tini -- docker-entrypoint.sh. Here deno comes from its npm package and
# tini from Debian's. One addition: when the npm registry is reached through
# a TLS-intercepting proxy, DENO_CERT names that CA, so that build stages can
# fetch npm packages; it lives in this stand-in only, never in the project.
#
# Uses the official image when it is here or can be pulled. The stand-in is
# cached in podman's storage: rebuilt only when this script, the Deno version
# or that CA changes. Usage: base_image.sh DENO_VERSION
set -euo pipefail
# shellcheck source=.ci/container/env.sh
source "$(dirname "$0")/env.sh"

version=${1:?usage: base_image.sh DENO_VERSION}
tag="denoland/deno:debian-${version}"
ca=${SSL_CERT_FILE:-}
[ -n "$ca" ] && [ -f "$ca" ] || ca=""
key=$(cat "$0" <(echo "$version") ${ca:+"$ca"} | sha256sum | cut -c1-16)
label=org.ip-timestamp.ci.stand-in

if podman image exists "docker.io/$tag"; then
  found=$(podman image inspect --format "{{index .Labels \"$label\"}}" "docker.io/$tag")
  if [ -z "$found" ]; then
    echo "base $tag: the official image, already here"
    exit 0
  elif [ "$found" = "$key" ]; then
    echo "base $tag: the stand-in, cached ($key)"
    exit 0
  fi
elif timeout 300 podman pull --quiet "docker.io/$tag" >/dev/null 2>&1; then
  echo "base $tag: the official image, pulled"
  exit 0
fi

case "$(uname -m)" in
  x86_64) npm_platform=linux-x64-glibc ;;
  aarch64) npm_platform=linux-arm64-glibc ;;
  *) echo "no deno npm package for $(uname -m)" >&2; exit 1 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@deno/${npm_platform}@${version}" >/dev/null)
tar -xzf "$work"/deno-*.tgz -C "$work" package/deno
"$work/package/deno" --version | grep -q "^deno ${version} " || {
  echo "the npm package did not hold deno ${version}" >&2
  exit 1
}
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
# The hooks' "$1" is the new root, expanded by mmdebstrap, not here.
# shellcheck disable=SC2016
mmdebstrap --quiet --variant=minbase --mode=root --format=tar --include=tini \
  "${slim[@]}" \
  --customize-hook='cp "$1/usr/bin/tini" "$1/tini" && chroot "$1" dpkg --purge tini >/dev/null' \
  --customize-hook='chroot "$1" useradd --uid 1993 --user-group deno' \
  --customize-hook='mkdir "$1/deno-dir" && chroot "$1" chown deno:deno /deno-dir' \
  --customize-hook="install -m 755 '$work/package/deno' \"\$1/usr/bin/deno\"" \
  --customize-hook="install -m 755 '$work/docker-entrypoint.sh' \"\$1/usr/local/bin/docker-entrypoint.sh\"" \
  --customize-hook="if [ -f '$work/registry-ca.pem' ]; then install -D -m 644 '$work/registry-ca.pem' \"\$1/etc/ip-timestamp-ci/registry-ca.pem\"; fi" \
  trixie - \
  "deb http://deb.debian.org/debian trixie main" \
  "deb http://deb.debian.org/debian trixie-updates main" \
  "deb http://deb.debian.org/debian-security trixie-security main" |
  podman import --quiet "${changes[@]}" - "docker.io/$tag" >/dev/null
echo "base $tag: the stand-in, built in $(($(date +%s) - started)) s ($key)"
