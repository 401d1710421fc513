#!/usr/bin/env bash
# The image's smoke test, one script for both engines:
#   .ci/container/smoke.sh docker ip-timestamp:smoke        (the workflow)
#   .ci/container/smoke.sh podman localhost/ip-timestamp:ci (.ci/run)
# Runs the image three ways: hardened (read-only, /tmp a tmpfs, no
# capabilities, no new privileges), the same with no network at all, and as
# deploy/deployment.yaml runs it (its uid, env, limits and probes). Each time:
# GET / is exactly {timestamp, ip}, the declared HEALTHCHECK passes, every
# process runs as the expected non-root uid and gid, and `stop` drains and
# exits 0 within 5 s. Needs curl, jq and deno on the host.
#
# An image of another architecture than the host's (arm64 on an x86-64
# machine) runs under emulation (QEMU), where every V8 start costs seconds
# of CPU. Two settings change for it, nothing else:
#   SMOKE_TIME_FACTOR=N  every time limit here, and the manifest's probes,
#                        N times as long (the startup probe asks N times as
#                        many times); 10 under emulation, 1 natively;
#   SMOKE_MEMORY=SIZE    the memory limit of the run as deployed instead of
#                        the manifest's: QEMU's own memory (about 1.4 GiB for
#                        the stack at start) counts; 3g under emulation.
set -euo pipefail
engine=${1:?usage: smoke.sh docker|podman IMAGE}
image=${2:?usage: smoke.sh docker|podman IMAGE}
cd "$(dirname "$0")/../.."

host_arch=$(uname -m | sed 's/^x86_64$/amd64/; s/^aarch64$/arm64/')
image_arch=$("$engine" image inspect -f '{{.Architecture}}' "$image") ||
  { echo "smoke: no image $image" >&2; exit 1; }
if [ "$image_arch" = "$host_arch" ]; then
  factor=${SMOKE_TIME_FACTOR:-1} memory=${SMOKE_MEMORY:-}
else
  factor=${SMOKE_TIME_FACTOR:-10} memory=${SMOKE_MEMORY:-3g}
  echo "smoke: a $image_arch image on $host_arch, emulated: time limits x$factor, memory ${memory:-as deployed}"
fi
[[ $factor =~ ^[1-9][0-9]*$ ]] || {
  echo "smoke: SMOKE_TIME_FACTOR must be a whole number of at least 1, not ${factor@Q}" >&2
  exit 2
}

# shellcheck source=.ci/container/lib.sh
source .ci/container/lib.sh
check_named smoke
work=$(mktemp -d)
# shellcheck disable=SC2317 # run by cleanup
cleanup_more() { rm -rf "$work"; }

# start NAME RUN-ARGS...: starts the image detached. podman's complaints that
# there is no systemd to time healthchecks go to a file, shown on failure.
start() {
  local name="$prefix-$1"
  shift
  containers+=("$name")
  "$engine" run -d --name "$name" "$@" "$image" >/dev/null 2>"$work/$name.err" ||
    fail "$name did not start: $(cat "$work/$name.err")"
}

# The host port published for the container's port $2.
host_port() {
  "$engine" port "$prefix-$1" "$2" | head -1 | sed 's/.*://'
}

# get URL TIMEOUT: the body, or nothing and status 1. The timeout is
# stretched by the time factor, as every limit below.
get() { curl -fsS --max-time "$(($2 * factor))" "$1" 2>/dev/null; }

# wait_http URL SECONDS: polls once a second until a 2xx answer.
wait_http() {
  local i
  for ((i = 0; i < $2 * factor; i++)); do
    get "$1" 1 >/dev/null && return 0
    sleep 1
  done
  return 1
}

# check_answer JSON [IP]: exactly {timestamp, ip}, a current UTC timestamp,
# and the given address (or any IP address).
check_answer() {
  jq -e --arg ip "${2:-}" '
    keys_unsorted == ["timestamp", "ip"]
    and (.timestamp | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}\\+00:00$"))
    and ((.timestamp | sub("\\.[0-9]{3}\\+00:00$"; "Z") | fromdateiso8601) - now | fabs < 300)
    and (if $ip == "" then (.ip | test("^([0-9]{1,3}\\.){3}[0-9]{1,3}$|^[0-9a-f:.]*:[0-9a-f:.]*$"))
         else .ip == $ip end)' <<<"$1" >/dev/null || fail "GET / answered ${1@Q}"
}

# check_users NAME UID GID: every process in the container, by number
# (names would be truncated).
check_users() {
  local ps
  ps=$("$engine" exec "$prefix-$1" ps -eo uid=,gid=,pid=,ppid=,args=) || fail "ps in $1"
  # tini as PID 1, the supervisor, its workers, and nginx's worker: an nginx
  # process started by nginx. Under QEMU each command line starts with the
  # emulator ("/usr/libexec/qemu-binfmt/aarch64-binfmt-P /tini /tini -- ...",
  # or /usr/bin/qemu-aarch64-static): read past it. There nginx's own
  # titles ("nginx: worker process") are not seen, only its arguments.
  awk -v uid="$2" -v gid="$3" '
    $5 ~ /(^|\/)(qemu-[a-z0-9_]+(-static)?|[a-z0-9_]+-binfmt-P)$/ {
      sub(/^ *[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+ +[^ ]+/, $1 " " $2 " " $3 " " $4)
    }
    { n++ } $1 != uid || $2 != gid { bad = 1; print "wrong user: " $0 }
    $3 == 1 && $5 == "/tini" { tini = 1 } / stack\.js$/ { stack = 1 }
    $5 ~ /(^|\/)nginx:?$/ { nginx[$3] = $4 } /worker\.js$/ { workers++ }
    END {
      for (pid in nginx) if (nginx[pid] in nginx) nginx_worker = 1
      exit !(tini && stack && nginx_worker && workers >= 1 && !bad)
    }' <<<"$ps" ||
    fail "$1: not every process runs as $2:$3, or the stack is incomplete:
$ps"
  ok "$1: all $(wc -l <<<"$ps") processes run as $2:$3"
}

# check_health NAME: the image's own HEALTHCHECK, run by the engine.
check_health() {
  local c="$prefix-$1" i status
  for ((i = 0; i < 60 * factor; i++)); do
    [ "$("$engine" inspect -f '{{.State.Running}}' "$c")" = true ] ||
      fail "$1: the container exited"
    if [ "$engine" = podman ]; then
      # No systemd here to time the checks: run the declared one now.
      status=$(podman healthcheck run "$c" 2>&1) && status=healthy
    else
      status=$(docker inspect -f '{{.State.Health.Status}}' "$c")
    fi
    [ "$status" = healthy ] && { ok "$1: the HEALTHCHECK passes"; return; }
    sleep 1
  done
  fail "$1: the HEALTHCHECK did not pass in $((60 * factor)) s (last: $status)"
}

# check_stop NAME: SIGTERM, drained, exit 0, well inside the 5 s grace.
check_stop() {
  local c="$prefix-$1" t0 ms code
  t0=$(date +%s%N)
  "$engine" stop -t "$((5 * factor))" "$c" >/dev/null 2>&1 || fail "$1: stop failed"
  ms=$((($(date +%s%N) - t0) / 1000000))
  code=$("$engine" inspect -f '{{.State.ExitCode}}' "$c")
  [ "$code" = 0 ] || fail "$1: exit code $code after stop"
  [ "$ms" -lt $((5000 * factor)) ] || fail "$1: stop took $ms ms"
  "$engine" logs "$c" 2>&1 | grep -q '"msg":"stopped","component":"stack"' ||
    fail "$1: the supervisor did not log that it stopped"
  ok "$1: stop drained and exited 0 in $ms ms"
}

# The image as built: a HEALTHCHECK kept (podman drops it unless --format
# docker), and a non-root user.
health=$("$engine" image inspect -f '{{json .Config.Healthcheck}}' "$image")
grep -q '/livez' <<<"$health" || fail "the image declares no HEALTHCHECK: $health"
uid=$("$engine" run --rm --network none --entrypoint id "$image" -u 2>/dev/null)
gid=$("$engine" run --rm --network none --entrypoint id "$image" -g 2>/dev/null)
if [ -z "$uid" ] || [ "$uid" = 0 ] || [ -z "$gid" ] || [ "$gid" = 0 ]; then
  fail "the image's user is root or unknown (uid '$uid', gid '$gid')"
fi
ok "the image declares a HEALTHCHECK and runs as $uid:$gid"
# One version: deno.json's, in the image's label and its programs' --version.
version=$(jq -r .version deno.json)
label=$("$engine" image inspect -f '{{index .Config.Labels "org.opencontainers.image.version"}}' "$image")
said=$("$engine" run --rm --network none "$image" deno run stack.js --version 2>/dev/null)
if [ "$label" != "$version" ] || [ "$said" != "$version" ]; then
  fail "deno.json says $version; the label ${label@Q}, stack.js --version ${said@Q}"
fi
ok "the label and stack.js --version say deno.json's $version"
# Lean: no npm cache, transpile journal or node_modules; the bundles only.
extra=$("$engine" run --rm --network none --entrypoint find "$image" \
  /deno-dir /app -mindepth 1 ! -path '/app/*.js' 2>/dev/null) || fail "find failed: $extra"
[ -z "$extra" ] || fail "the image carries more than the bundles: $(head -5 <<<"$extra")"
ok "/deno-dir is empty and /app holds only the bundles"

hardened=(--read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges)

# 1. Hardened, published on a free loopback port.
start hardened "${hardened[@]}" -p 127.0.0.1::8080
port=$(host_port hardened 8080)
wait_http "http://127.0.0.1:$port/healthz" 30 || fail "hardened: no /healthz in $((30 * factor)) s"
curl -fsS --max-time "$((2 * factor))" -D "$work/headers" "http://127.0.0.1:$port/" >"$work/body" ||
  fail "hardened: GET / failed"
grep -qi '^content-type: application/json' "$work/headers" ||
  fail "hardened: GET / is not JSON: $(cat "$work/headers")"
check_answer "$(cat "$work/body")"
ok "hardened: GET / is exactly $(cat "$work/body")"
check_users hardened "$uid" "$gid"
check_health hardened
check_stop hardened

# 2. No network at all: nothing may be fetched at start. Asked from inside.
start offline "${hardened[@]}" --network none
check_health offline
# Through bash's /dev/tcp, as the HEALTHCHECK asks: a Deno runtime would
# cost seconds of CPU under emulation for one request.
# shellcheck disable=SC2016 # expanded by the container's bash
response=$("$engine" exec "$prefix-offline" timeout "$((5 * factor))" bash -c \
  'exec 3<>/dev/tcp/127.0.0.1/$PORT && printf "GET / HTTP/1.0\r\nHost: smoke\r\n\r\n" >&3 && cat <&3' |
  tr -d '\r') || fail "offline: GET / from inside failed"
[[ $response == "HTTP/1.1 200 "* ]] || fail "offline: GET / from inside answered ${response@Q}"
answer=$(sed '1,/^$/d' <<<"$response")
check_answer "$answer" 127.0.0.1
ok "offline: GET / from inside is exactly $answer"
check_users offline "$uid" "$gid"
check_stop offline

# 3. As deploy/deployment.yaml runs it.
pod=$(deno run --quiet --frozen --allow-read=deploy --allow-env=LOG_TOKENS,LOG_STREAM \
  tests/pod_args.ts deploy/deployment.yaml) || fail "cannot read deploy/deployment.yaml"
mapfile -t pod_args < <(jq -r --arg memory "$memory" \
  '.args[] | if $memory != "" and startswith("--memory=") then "--memory=\($memory)" else . end' <<<"$pod")
pod_port=$(jq -r .port <<<"$pod")
start pod "${pod_args[@]}" -p "127.0.0.1::$pod_port"
port=$(host_port pod "$pod_port")
# The startup probe: its period and failure threshold bound the start
# (stretched by asking as often, more times).
read -r path period failures timeout < <(jq -r '.probes[0] | "\(.path) \(.period) \(.failures) \(.timeout)"' <<<"$pod")
[ "$(jq -r '.probes[0].kind' <<<"$pod")" = startupProbe ] || fail "pod: no startupProbe"
for ((i = 1; ; i++)); do
  get "http://127.0.0.1:$port$path" "$timeout" >/dev/null && break
  [ "$i" -lt $((failures * factor)) ] || fail "pod: the startupProbe failed $((failures * factor)) times"
  sleep "$period"
done
ok "pod: the startupProbe passed after $i tries"
while read -r kind path timeout; do
  get "http://127.0.0.1:$port$path" "$timeout" >/dev/null || fail "pod: the $kind failed"
  ok "pod: the $kind passes"
done < <(jq -r '.probes[1:][] | "\(.kind) \(.path) \(.timeout)"' <<<"$pod")
answer=$(get "http://127.0.0.1:$port/" 2) || fail "pod: GET / failed"
check_answer "$answer"
check_users pod "$(jq -r .uid <<<"$pod")" "$(jq -r .gid <<<"$pod")"
check_health pod
check_stop pod

echo "smoke: ok ($engine, $image)"
