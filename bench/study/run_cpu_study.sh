#!/usr/bin/env bash
# The CPU study as published (docs/results/cpu-study.md): both sweep files into one store,
# each timed with /usr/bin/time, the load average sampled every minute into load.log.
#   bash bench/study/run_cpu_study.sh OUTDIR        (OUTDIR/store is the study's store)
set -euo pipefail
OUT=${1:?usage: run_cpu_study.sh OUTDIR}
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
( while true; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 60; done ) > "$OUT/load.log" &
trap 'kill $!' EXIT
for f in cpu-study cpu-study-data; do
    /usr/bin/time -v nice equisweep run "sweeps/$f.yaml" --store "$OUT/store" > "$OUT/$f.log" 2> "$OUT/$f.err"
    grep -E "Elapsed|Maximum resident" "$OUT/$f.err"
done
