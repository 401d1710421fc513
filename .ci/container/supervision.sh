#!/usr/bin/env bash
# The supervisor in the container, where the machine's limits are real:
#   .ci/container/supervision.sh podman IMAGE
# - the declared HEALTHCHECK costs under 50 ms of CPU a run (measured);
# - under a CPU quota of 0.05 the stack starts without a restart, says
#   what it waits for, and serves;
# - under a 256 MiB memory limit the default worker count fits it,
#   WORKERS=16 is refused with one line and exit 2, and a worker the kernel
#   kills for the limit is logged as such and replaced;
# - run as root (--user 0), the stack refuses with one line and exit 2.
# Native architecture only (check.sh): an emulator's CPU and memory would
# swamp what it measures.
set -euo pipefail
engine=${1:?usage: supervision.sh docker|podman IMAGE}
image=${2:?usage: supervision.sh docker|podman IMAGE}
cd "$(dirname "$0")/../.."
# shellcheck source=.ci/container/lib.sh
source .ci/container/lib.sh
check_named supervision

# start NAME RUN-ARGS...: the image, detached.
start() {
  local name="$prefix-$1"
  shift
  containers+=("$name")
  "$engine" run -d --name "$name" "$@" "$image" >/dev/null 2>&1 ||
    fail "$name did not start"
}

# wait_log NAME PATTERN SECONDS: until the container's log has a line.
wait_log() {
  local i
  for ((i = 0; i < $3; i++)); do
    "$engine" logs "$prefix-$1" 2>&1 | grep -q "$2" && return 0
    [ "$("$engine" inspect -f '{{.State.Running}}' "$prefix-$1")" = true ] ||
      fail "$1 exited: $("$engine" logs "$prefix-$1" 2>&1 | tail -3)"
    sleep 1
  done
  fail "$1: no line matching $2 in $3 s"
}

# exits_2 NAME PATTERN RUN-ARGS...: the start is refused in one line.
exits_2() {
  local name=$1 pattern=$2 code lines
  shift 2
  start "$name" "$@"
  code=$("$engine" wait "$prefix-$name")
  lines=$("$engine" logs "$prefix-$name" 2>&1)
  [ "$code" = 2 ] || fail "$name: exit $code, not 2: $lines"
  [ "$(wc -l <<<"$lines")" = 1 ] || fail "$name: more than one line: $lines"
  grep -q "$pattern" <<<"$lines" || fail "$name: the line does not say $pattern: $lines"
  ok "$name: exit 2, one line: $(cut -c1-160 <<<"$lines")"
}

# 1. The HEALTHCHECK as declared, run in the container and timed by bash.
start health --read-only --tmpfs /tmp
wait_log health '"msg":"ready"' 60
mapfile -t check < <("$engine" image inspect -f '{{json .Config.Healthcheck.Test}}' "$image" |
  jq -r '.[1:][]')
# 20 runs in one timed loop: bash's clock is too coarse for one.
# shellcheck disable=SC2016 # expanded by the container's bash
ms=$("$engine" exec "$prefix-health" bash -c 'TIMEFORMAT="%3U %3S"
  { time for _ in {1..20}; do "$@" >/dev/null 2>&1 || echo failed; done; } 2>&1 |
    awk "/failed/ { print -1; exit } { printf \"%.1f\", (\$1 + \$2) * 1000 / 20 }"' _ "${check[@]}")
[ "${ms%.*}" -ge 0 ] || fail "health: the HEALTHCHECK failed"
[ "${ms%.*}" -lt 50 ] || fail "health: the HEALTHCHECK costs $ms ms of CPU a run"
ok "health: the HEALTHCHECK costs $ms ms of CPU a run (mean of 20)"

# 2. A twentieth of a CPU: slow, not dead.
start slow --cpus 0.05 --read-only --tmpfs /tmp
wait_log slow '"msg":"ready"' 600
log=$("$engine" logs "$prefix-slow" 2>&1)
if grep -E '"level":"(warn|error)"' <<<"$log" | grep -v '"client"'; then
  fail "slow: warnings or errors while starting"
fi
grep -q '"msg":"waiting for worker 0 to answer"' <<<"$log" ||
  echo "supervision: note: the slow start took less than a report's interval"
ms=$(grep -o '"startup_ms":[0-9]*' <<<"$log" | cut -d: -f2)
"$engine" exec "$prefix-slow" bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080 &&
  printf "GET / HTTP/1.0\r\n\r\n" >&3 && cat <&3' | grep -q '"timestamp"' ||
  fail "slow: GET / failed"
ok "slow: under --cpus 0.05 it started in ${ms} ms without a restart, and serves"

# 3. 256 MiB: the default fits; more workers than fit are refused.
start small --memory 256m --memory-swap 256m --read-only --tmpfs /tmp
wait_log small '"msg":"ready"' 60
"$engine" logs "$prefix-small" 2>&1 | grep '"msg":"ready"' |
  grep -q '"workers":[12],.*"memory_limit_mib":256' ||
  fail "small: the default worker count does not follow the limit"
ok "small: under 256 MiB the default is $("$engine" logs "$prefix-small" 2>&1 |
  grep -o '"workers":[0-9]*' | head -1)"
exits_2 crowded 'Invalid WORKERS 16: .*256 MiB' --memory 256m --memory-swap 256m \
  -e WORKERS=16 --read-only --tmpfs /tmp

# A worker the kernel kills for the limit is logged as such: the worker is
# made the OOM killer's first choice, and a hog fills the cgroup.
start oom --memory 256m --memory-swap 256m -e WORKERS=1 --read-only --tmpfs /tmp
wait_log oom '"msg":"ready"' 60
# shellcheck disable=SC2016 # expanded in the container
"$engine" exec "$prefix-oom" sh -c 'for p in $(pgrep -f "worker\.js$"); do
  echo 1000 >/proc/$p/oom_score_adj; done'
"$engine" exec "$prefix-oom" deno eval --quiet \
  'const hog = []; for (;;) hog.push(new Uint8Array(1 << 20).fill(1))' \
  >/dev/null 2>&1 || true
wait_log oom '"msg":"worker 0 killed by the kernel: out of memory; restarting"' 30
wait_log oom '"msg":"worker 0 restarted"' 60
"$engine" logs "$prefix-oom" 2>&1 | grep 'killed by the kernel' |
  grep -q '"worker":0,.*"signal":"SIGKILL".*"memory_limit_mib":256' ||
  fail "oom: the line lacks the worker, the signal or the limit"
ok "oom: $("$engine" logs "$prefix-oom" 2>&1 | grep -o '"msg":"worker 0 killed[^}]*')"

# 4. As root: refused, as PostgreSQL refuses, before anything is written.
exits_2 root 'The stack does not run as root' --user 0 --read-only --tmpfs /tmp
echo "supervision: ok ($engine, $image)"
