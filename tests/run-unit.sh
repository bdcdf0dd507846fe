#!/usr/bin/env bash
# run-unit.sh — run each cmocka unit-test binary given on the command line,
# print each one's result and a closing "N passed, N failed" line; exit 1 if
# any binary failed.
set -u
pass=0; fail=0; failed=()
for t in "$@"; do
    name=$(basename "$t")
    if out=$(timeout 600 "$t" 2>&1); then
        pass=$((pass + 1))
        n=$(printf '%s\n' "$out" | grep -c '^\[       OK \]' || true)
        printf '  ok    %-28s (%s cases)\n' "$name" "$n"
    else
        fail=$((fail + 1)); failed+=("$name")
        printf '  FAIL  %s\n' "$name"
        printf '%s\n' "$out" | tail -n 40 | sed 's/^/        /'
    fi
done
echo "unit: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
