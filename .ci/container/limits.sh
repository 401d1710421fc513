#!/usr/bin/env bash
# The supervisor's memory under load (issue 18, item 8): runs the image with
# deploy/deployment.yaml's memory limit and no swap, floods it for 30 s with
# wrk from the host (127.0.0.1 only), once with one client's 429s (a low
# RATE_LIMIT: every request refused and logged) and once with 200s (no rate
# limit: an access-log line per request), and fails with one line if the
# supervisor's own memory, sampled during and after each flood, passes 32 MiB
# (measured: 20–21 MiB after 30 s of 429s or 200s).
# Its own: anonymous memory (RssAnon), what the cgroup is charged for it; its
# file pages are the deno binary's, shared with every worker and charged
# once (measured at start: RSS 60 MiB, of which 41 MiB file, 19 MiB anon).
#   .ci/container/limits.sh podman localhost/ip-timestamp:ci
# Needs curl and wrk on the host. Its containers are removed on exit.
set -euo pipefail
engine=${1:?usage: limits.sh docker|podman IMAGE}
image=${2:?usage: limits.sh docker|podman IMAGE}
# podman: this project's storage, where check.sh builds the image.
if [ "$engine" = podman ]; then
  # shellcheck source=.ci/container/env.sh
  source "$(dirname "$0")/env.sh"
fi
MAX_KIB=$((32 * 1024))
SECONDS_OF_LOAD=${LIMITS_SECONDS:-30}

# shellcheck source=.ci/container/lib.sh
source "$(dirname "$0")/lib.sh"
check_named limits
out=""
# shellcheck disable=SC2317 # run by cleanup
cleanup_more() { [ -z "$out" ] || rm -f "$out"; }

# rss NAME PATTERN: the summed RSS (KiB) of the container's processes whose
# command line matches PATTERN (by number: names would be truncated).
rss() {
  "$engine" exec "$1" ps -eo rss=,args= | awk -v p="$2" '$0 ~ p { s += $1; n++ } END { print s + 0, n + 0 }'
}

# anon NAME PATTERN: the summed anonymous memory (KiB) of those processes.
anon() {
  # shellcheck disable=SC2016 # expanded in the container
  "$engine" exec "$1" sh -c 'for p in $(pgrep -f "$0"); do
    grep "^RssAnon:" "/proc/$p/status"; done' "$2" | awk '{ s += $2 } END { print s + 0 }'
}

# flood NAME RATE_LIMIT: starts the image, loads it for SECONDS_OF_LOAD s,
# and sets sup (the supervisor's peak RSS, KiB), workers, nginx (KiB, after)
# and requests (what wrk sent).
flood() {
  local name="$prefix-$1" port i peak=0 now
  containers+=("$name")
  "$engine" run -d --name "$name" --memory 256m --memory-swap 256m \
    -e RATE_LIMIT="$2" -p 127.0.0.1::8080 "$image" >/dev/null 2>&1 ||
    fail "$1: the image did not start"
  port=$("$engine" port "$name" 8080 | head -1 | sed 's/.*://')
  for ((i = 0; i < 60; i++)); do
    curl -fsS --max-time 1 -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null && break
    sleep 1
  done
  ((i < 60)) || fail "$1: the stack did not answer /healthz in 60 s"
  sleep 2
  out=$(mktemp)
  timeout $((SECONDS_OF_LOAD + 30)) wrk -c64 -t2 -d"${SECONDS_OF_LOAD}s" --timeout 2s \
    "http://127.0.0.1:$port/" >"$out" 2>&1 &
  local load=$!
  # Sampled while the load runs, and once after it: the peak counts.
  while kill -0 "$load" 2>/dev/null; do
    now=$(anon "$name" ' stack[.]js$')
    ((now > peak)) && peak=$now
    sleep 3
  done
  wait "$load" || fail "$1: wrk failed: $(tail -3 "$out")"
  now=$(anon "$name" ' stack[.]js$')
  ((now > peak)) && peak=$now
  sup=$peak
  read -r supRss _ < <(rss "$name" ' stack[.]js$')
  read -r workers nworkers < <(rss "$name" ' /app/worker[.]js$')
  read -r nginx _ < <(rss "$name" '^ *[0-9]+ nginx: ')
  requests=$(awk '/requests in/ { print $1 }' "$out")
  rm -f "$out"
  "$engine" rm -f "$name" >/dev/null 2>&1 || true
}

command -v wrk >/dev/null || fail "wrk is not installed"
status=0
for run in "429s 1" "200s 0"; do
  read -r kind limit <<<"$run"
  flood "$kind" "$limit"
  echo "limits: after ${SECONDS_OF_LOAD} s of ${kind} (${requests} requests):" \
    "supervisor $((sup / 1024)) MiB anonymous at most (limit $((MAX_KIB / 1024)); RSS $((supRss / 1024)) MiB)," \
    "${nworkers} workers $((workers / 1024)) MiB, nginx $((nginx / 1024)) MiB;" \
    "supervisor/workers $(awk -v a="$sup" -v b="$workers" 'BEGIN { printf "%.2f", a / b }')"
  if ((sup > MAX_KIB)); then
    echo "limits: FAILED: the supervisor reached $((sup / 1024)) MiB of anonymous memory under ${SECONDS_OF_LOAD} s of ${kind}, more than $((MAX_KIB / 1024)) MiB" >&2
    status=1
  fi
done
exit "$status"
