#!/usr/bin/env bash
# The CPU study as published (docs/results/cpu-study.md): the learning-rate probe's sweep
# first (its own name, same task), then the study's files, one sweep `cpu-study`, into one
# store; each file timed, the load average sampled every minute into load.log.
#   bash bench/study/run_cpu_study.sh OUTDIR [--no-probe]   (OUTDIR/store is the store)
set -euo pipefail
OUT=${1:?usage: run_cpu_study.sh OUTDIR [--no-probe]}
PROBE=${2:-}
cd "$(dirname "$0")/../.."
mkdir -p "$OUT"
( while true; do echo "$(date +%T) $(cut -d' ' -f1-3 /proc/loadavg)"; sleep 60; done ) > "$OUT/load.log" &
trap 'kill $!' EXIT
files="cpu-study cpu-study-compute-lr4e-3 cpu-study-data cpu-study-data-large"
files="$files cpu-study-data-transformer cpu-study-data-transformer-large cpu-study-gatr-top"
[ "$PROBE" = "--no-probe" ] || files="cpu-study-lr-probe $files"
for f in $files; do
    start=$(date +%s)
    nice equisweep run "sweeps/$f.yaml" --store "$OUT/store" > "$OUT/$f.log" 2>&1
    echo "$f: $(( $(date +%s) - start )) s"
done
