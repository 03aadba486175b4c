#!/usr/bin/env bash
# Runs every compiled test file under uvu, each file in its own process with its own timeout,
# and prints the closing line CI reads: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
FILE_TIMEOUT=${FILE_TIMEOUT:-300}
pattern=${1:-}
passed=0; failed=0; skipped=0; broken=()
files=$(ls dist/test/*.test.js 2>/dev/null | sort)
if [ -n "$pattern" ]; then files=$(echo "$files" | grep -- "$pattern" || true); fi
for f in $files; do
  out=$(mktemp)
  timeout -k 5 "$FILE_TIMEOUT" node node_modules/uvu/bin.js dist/test "$(basename "$f" | sed 's/\./\\./g')\$" -c false 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  total=$(sed -n 's/^  Total: *\([0-9]*\)$/\1/p' "$out" | tail -1)
  p=$(sed -n 's/^  Passed: *\([0-9]*\)$/\1/p' "$out" | tail -1)
  s=$(sed -n 's/^  Skipped: *\([0-9]*\)$/\1/p' "$out" | tail -1)
  if [ -z "$total" ]; then
    echo "!! $f: no summary (exit $rc) — counted as one failure"
    failed=$((failed+1)); broken+=("$f")
  else
    passed=$((passed+p)); failed=$((failed+total-p)); skipped=$((skipped+${s:-0}))
    if [ "$rc" -ne 0 ] && [ "$total" -eq "$p" ]; then failed=$((failed+1)); broken+=("$f (exit $rc)"); fi
    if [ "$total" -ne "$p" ]; then broken+=("$f"); fi
  fi
  rm -f "$out"
done
[ ${#broken[@]} -gt 0 ] && printf 'failing: %s\n' "${broken[@]}"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
