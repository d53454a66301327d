#!/bin/sh
# Runs the test suites against the build in $1 (default build/san):
# unit tests (cmocka), fuzz-corpus replay, black-box tests of the real binary
# over HTTP, and browser tests. $2 picks one suite: unit, fuzz, blackbox,
# browser. Ends with "N passed, N failed" and a non-zero status on failure.
set -u
O=${1:-build/san}
only=${2:-all}
passed=0
failed=0
failures=""
log_dir=$(mktemp -d)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

record() { # name status logfile
    if [ "$2" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok   $1"
    else
        failed=$((failed + 1))
        failures="$failures $1"
        echo "FAIL $1 (log follows)"
        tail -n 60 "$3"
    fi
}

want() { [ "$only" = all ] || [ "$only" = "$1" ]; }

if want unit; then
    echo "== unit tests"
    for t in $(find "$O/tests/unit" -type f -name 'test_*' 2>/dev/null | sort); do
        name=unit/$(basename "$(dirname "$t")")/$(basename "$t")
        "$t" >"$log_dir/x" 2>&1
        record "$name" $? "$log_dir/x"
    done
fi

# The store contract tests again on PostgreSQL (a throwaway cluster), so both
# backends keep the same contract.
if want unit && [ -x "$O/tests/unit/store/test_sqlite" ] && ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
    pg_dir=$(mktemp -d)
    if url=$(sh scripts/pg-test.sh start "$pg_dir" 2>"$log_dir/pg"); then
        TANDEM_TEST_STORE="$url" "$O/tests/unit/store/test_sqlite" >"$log_dir/x" 2>&1
        record "unit/store/test_sqlite (postgres)" $? "$log_dir/x"
        TANDEM_TEST_STORE="$url" "$O/tests/unit/catalog/test_import" >"$log_dir/x" 2>&1
        record "unit/catalog/test_import (postgres)" $? "$log_dir/x"
        TANDEM_TEST_STORE="$url" "$O/tests/unit/store/test_reco" >"$log_dir/x" 2>&1
        record "unit/store/test_reco (postgres)" $? "$log_dir/x"
        sh scripts/pg-test.sh stop "$pg_dir"
    else
        record "unit/store (postgres cluster start)" 1 "$log_dir/pg"
    fi
    rm -rf "$pg_dir"
fi

if want fuzz; then
    echo "== fuzz corpora replay"
    for r in $(find "$O/fuzz" -type f -name 'replay_*' 2>/dev/null | sort); do
        target=${r##*/replay_}
        "$r" fuzz/corpus/"$target" >"$log_dir/x" 2>&1
        record "fuzz/$target" $? "$log_dir/x"
    done
fi

if want blackbox; then
    echo "== black-box tests ($O/tandem over HTTP)"
    for t in $(ls tests/blackbox/test_*.py 2>/dev/null | sort); do
        TANDEM_BIN="$O/tandem" PYTHONPATH=tests/blackbox python3 -m unittest -v "$t" >"$log_dir/x" 2>&1
        st=$?
        n=$(grep -Eo '^Ran [0-9]+ test' "$log_dir/x" | grep -Eo '[0-9]+' || echo 0)
        echo "     $t: $n tests"
        record "blackbox/$(basename "$t" .py)" $st "$log_dir/x"
    done
fi

if want browser && [ -f tests/browser/run.sh ]; then
    echo "== browser tests (chromium + playwright-core)"
    E2E=0 sh tests/browser/run.sh "$O/tandem" >"$log_dir/x" 2>&1
    record "browser" $? "$log_dir/x"
    echo "== end to end: the demo shop, journeys, SMTP (chromium + playwright-core)"
    node tests/browser/e2e.test.mjs "$O/tandem" >"$log_dir/x" 2>&1
    record "browser/e2e" $? "$log_dir/x"
fi

rm -rf "$log_dir"
echo
[ -z "$failures" ] || echo "failed:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
