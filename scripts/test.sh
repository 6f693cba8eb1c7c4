#!/usr/bin/env bash
# Runs every test file (unit tests beside the code, e2e tests under test/) as its own
# process with Node >= 22.18 (TypeScript runs directly through type stripping), then
# prints one closing line "N passed, N failed" summing every suite.
#
# usage: scripts/test.sh [FILTER]   (FILTER: a substring of the test file paths)
# Tests whose file name ends in .root.test.ts need root; they are still run, and
# fail with a clear message when not root.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
filter=${1:-}
passed=0; failed=0; files_failed=()
mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.test.ts' | grep -F -- "$filter" | sort)
# unit tests first (fast), e2e tests in test/ last
mapfile -t files < <(printf '%s\n' "${files[@]}" | grep -v '^test/'; printf '%s\n' "${files[@]}" | grep '^test/')
for f in "${files[@]}"; do
  [ -n "$f" ] || continue
  echo "── $f"
  out=$(mktemp)
  timeout --kill-after=30 "${ISTHMUS_TEST_TIMEOUT:-1200}" node --no-warnings "$f" 2>&1 | tee "$out"
  rc=${PIPESTATUS[0]}
  p=$(sed -n 's/^ *Passed: *\([0-9]*\).*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
  t=$(sed -n 's/^ *Total: *\([0-9]*\).*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
  s=$(sed -n 's/^ *Skipped: *\([0-9]*\).*/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
  rm -f "$out"
  f_fail=$((t - p - s))
  if [ "$rc" -ne 0 ] && [ "$f_fail" -eq 0 ]; then f_fail=1; fi   # crashed or timed out outside a test
  passed=$((passed + p)); failed=$((failed + f_fail))
  [ "$f_fail" -gt 0 ] && files_failed+=("$f")
done
if [ ${#files_failed[@]} -gt 0 ]; then
  echo; echo "failing files:"; printf '  %s\n' "${files_failed[@]}"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
