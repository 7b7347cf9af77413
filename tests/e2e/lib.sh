# Shared helpers for the e2e scripts: a check counter and a final summary line that ctest and
# CI read ("N passed, N failed").
set -uo pipefail
PASSED=0
FAILED=0
check() {  # check NAME CMD...: runs CMD, records PASS/FAIL
  local name=$1
  shift
  if "$@"; then
    echo "PASS $name"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL $name"
    FAILED=$((FAILED + 1))
  fi
}
expect_eq() {  # expect_eq NAME EXPECTED ACTUAL
  if [[ "$2" == "$3" ]]; then
    echo "PASS $1"
    PASSED=$((PASSED + 1))
  else
    echo "FAIL $1: expected [$2], got [$3]"
    FAILED=$((FAILED + 1))
  fi
}
finish() {
  echo "e2e: $PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
}
