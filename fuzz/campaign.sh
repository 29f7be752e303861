#!/bin/sh
# A bounded local fuzzing campaign: every harness in turn for SECONDS each, one process at a time.
#   fuzz/campaign.sh SECONDS OUTDIR [harness ...]     (harnesses: frames handshake deflate envelope speedups)
# Each harness starts from a copy of its seed corpus in OUTDIR/corpus-NAME; libFuzzer's final stats
# go to OUTDIR/NAME.log and any crashing input to OUTDIR/crash-NAME-*. Needs the `fuzz` extra
# (atheris); `speedups` needs fuzz/speedups/build.sh first.
set -u
seconds=${1:?usage: campaign.sh SECONDS OUTDIR [harness ...]}
out=${2:?usage: campaign.sh SECONDS OUTDIR [harness ...]}
shift 2
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
mkdir -p "$out"
for name in ${*:-frames handshake deflate envelope speedups}; do
    corpus="$out/corpus-$name"
    mkdir -p "$corpus"
    cp "$root/fuzz/corpus/$name"/* "$corpus"/
    flags="-max_total_time=$seconds -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix=$out/crash-$name-"
    start=$(date +%s)
    if [ "$name" = speedups ]; then
        # shellcheck disable=SC2086
        (cd "$root" && ASAN_OPTIONS=detect_leaks=0 PYTHONMALLOC=malloc fuzz/speedups/build/fuzz_speedups $flags "$corpus") \
            > "$out/$name.log" 2>&1
    else
        # shellcheck disable=SC2086
        (cd "$root" && "$python" -m "fuzz.fuzz_$name" $flags "$corpus") > "$out/$name.log" 2>&1
    fi
    echo "$name: exit $? after $(( $(date +%s) - start )) s; $(grep -E '^#[0-9]+' "$out/$name.log" | tail -1)"
done
