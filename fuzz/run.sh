#!/bin/sh
# Coverage-guided fuzzing with libFuzzer (clang), as `make fuzz` runs it.
#
#   sh fuzz/run.sh [SECONDS] [TARGET...]
#
# Builds a libtandem with clang and ASan+UBSan (plus fuzzer coverage) into
# $FUZZ_O (default build/fuzz), links every fuzz/<target>.c but replay.c
# against it, and runs each target (or the ones named) for SECONDS (default
# 60) on its committed corpus fuzz/corpus/<target>/, with the dictionary
# fuzz/dict/<target>.dict when there is one. The committed corpus is only
# read: new inputs go to $FUZZ_O/corpus/<target>/. Exits non-zero if any
# target crashes; the reproducer is left in $FUZZ_O/crashes/ (fix the bug,
# then commit the reproducer to the target's corpus, where `make test`
# replays it).
set -u
secs=${1:-60}
[ $# -gt 0 ] && shift
O=${FUZZ_O:-build/fuzz}
SAN=address,undefined
cd "$(dirname "$0")/.." || exit 2

command -v clang >/dev/null || { echo "fuzz: clang is not installed (make deps-test)" >&2; exit 2; }

echo "== building libtandem with clang into $O"
if ! make -s O="$O" CC=clang SANITIZE="fuzzer-no-link,$SAN" "$O/libtandem.a"; then
    echo "fuzz: the clang build failed" >&2
    exit 2
fi
# the compile flags and libraries, from the Makefile (one source of truth)
base_cflags=$(make -s --no-print-directory O="$O" CC=clang \
    --eval 'print-cflags: ; @echo $(CFLAGS)' print-cflags)
ldlibs=$(make -s --no-print-directory O="$O" CC=clang \
    --eval 'print-ldlibs: ; @echo $(LDLIBS)' print-ldlibs)

if [ $# -gt 0 ]; then
    targets="$*"
else
    targets=$(for f in fuzz/*.c; do
        t=$(basename "$f" .c)
        [ "$t" = replay ] || echo "$t"
    done)
fi

mkdir -p "$O/fuzz" "$O/crashes" "$O/logs"
failed=""
for t in $targets; do
    [ -f "fuzz/$t.c" ] || { echo "fuzz: no target fuzz/$t.c" >&2; failed="$failed $t"; continue; }
    echo "== $t: build"
    # shellcheck disable=SC2086
    if ! clang $base_cflags -fsanitize=fuzzer,$SAN -fno-sanitize-recover=all \
        -fno-omit-frame-pointer -o "$O/fuzz/$t" "fuzz/$t.c" "$O/libtandem.a" $ldlibs; then
        failed="$failed $t"
        continue
    fi
    mkdir -p "$O/corpus/$t"
    set -- "$O/corpus/$t"
    [ -d "fuzz/corpus/$t" ] && set -- "$@" "fuzz/corpus/$t"
    dict=""
    [ -f "fuzz/dict/$t.dict" ] && dict="-dict=fuzz/dict/$t.dict"
    echo "== $t: ${secs}s"
    # shellcheck disable=SC2086
    "$O/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$O/crashes/$t-" $dict "$@" >"$O/logs/$t.log" 2>&1
    st=$?
    grep -E '^(#[0-9]+.*(DONE|INITED)|stat::number_of_executed_units|stat::new_units_added)' \
        "$O/logs/$t.log" | tail -n 3
    if [ $st -ne 0 ]; then
        echo "FAIL $t (exit $st); log: $O/logs/$t.log; reproducer:"
        ls "$O/crashes/$t-"* 2>/dev/null
        grep -E 'ERROR|SUMMARY|runtime error' "$O/logs/$t.log" | head -n 5
        failed="$failed $t"
    else
        echo "ok   $t"
    fi
done
if [ -n "$failed" ]; then
    echo "fuzz failed:$failed"
    exit 1
fi
echo "fuzz: no crash"
