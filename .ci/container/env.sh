# shellcheck shell=bash
# Sourced by the container scripts: podman's settings for this project's CI,
# and where its images live between runs (the stand-in base and the build
# cache survive; everything else is per run).
CI_CONTAINER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CI_CACHE="${IP_TIMESTAMP_CI_CACHE:-/var/tmp/ip-timestamp-ci}"
mkdir -p "$CI_CACHE/storage" "$CI_CACHE/run"
export CONTAINERS_CONF="$CI_CONTAINER_DIR/containers.conf"
export CONTAINERS_STORAGE_CONF="$CI_CACHE/storage.conf"
# Written whole, then renamed: a run in parallel may be reading it.
cat >"$CONTAINERS_STORAGE_CONF.$$" <<CONF
[storage]
driver = "overlay"
graphroot = "$CI_CACHE/storage"
runroot = "$CI_CACHE/run"
CONF
mv "$CONTAINERS_STORAGE_CONF.$$" "$CONTAINERS_STORAGE_CONF"
