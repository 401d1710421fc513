# shellcheck shell=bash
# Sourced by the container checks (smoke.sh, supervision.sh, limits.sh): the
# containers a check starts, named after the check and its pid (check.sh
# removes those of a check killed outright) and removed when it exits, and
# one way to say ok and to fail, with each container's last log lines.
# Needs $engine; call `check_named NAME` first. A check with more to clean
# up (temp files) defines cleanup_more.
# shellcheck disable=SC2034 # prefix and containers: the sourcing check's
check_named() {
  check_name=$1
  prefix="ip-timestamp-$check_name-$$"
  containers=()
  trap cleanup EXIT
}

cleanup_more() { :; }

# shellcheck disable=SC2317,SC2154 # run by the trap; engine: the check's
cleanup() {
  for c in "${containers[@]}"; do "$engine" rm -f "$c" >/dev/null 2>&1 || true; done
  cleanup_more
}

ok() { echo "$check_name: ok: $*"; }

# fail MESSAGE: says why, shows what each container logged last (not the
# access log), and exits 1.
# shellcheck disable=SC2154 # engine: the check's
fail() {
  echo "$check_name: FAILED: $*" >&2
  for c in "${containers[@]}"; do
    echo "--- logs of $c" >&2
    "$engine" logs "$c" 2>&1 | grep -v '"client"' | tail -20 >&2 || true
  done
  exit 1
}
