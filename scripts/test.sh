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
passed=0; failed=0; files_failed=(); excerpts=()
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
  f_fail=$((t - p - s))
  if [ "$rc" -ne 0 ] && [ "$f_fail" -eq 0 ]; then f_fail=1; fi   # crashed or timed out outside a test
  passed=$((passed + p)); failed=$((failed + f_fail))
  if [ "$f_fail" -gt 0 ]; then
    files_failed+=("$f")
    # each failing test's name and the first lines of its message (no stack), repeated at the end
    # so that a log cut to its tail still says what failed and why
    excerpts+=("$f (exit $rc):")
    mapfile -t lines < <(awk '/^ *Total: /{n=0} /^ *FAIL /{n=6} n>0 && NF>0 && !/^ *at /{print "  " substr($0, 1, 300); n--}' "$out")
    [ ${#lines[@]} -eq 0 ] && mapfile -t lines < <(tail -n 8 "$out" | cut -c1-300 | sed 's/^/  /')
    excerpts+=("${lines[@]}")
    # what the test printed about the clusters when it failed (test/lib/cli.ts, diagnosed)
    mapfile -t lines < <(grep '^diag: ' "$out" | head -n 40 | cut -c1-400 | sed 's/^/  /')
    [ ${#lines[@]} -eq 0 ] || excerpts+=("${lines[@]}")
  fi
  rm -f "$out"
done
if [ ${#files_failed[@]} -gt 0 ]; then
  echo; echo "failures:"; printf '%s\n' "${excerpts[@]}"
  echo; echo "failing files:"; printf '  %s\n' "${files_failed[@]}"
fi
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
