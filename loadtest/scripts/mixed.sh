#!/usr/bin/env bash
# Impressions and stats reads mixed: READS of the requests read a campaign's
# stats, the rest record impressions.
#   RATE (800/s), DURATION_S (30), CAMPAIGNS (8), READS (0.3), DUP (0.1)
source "$(dirname "$0")/lib.sh"
rate="${RATE:-800}" secs="${DURATION_S:-30}" n="${CAMPAIGNS:-8}" reads="${READS:-0.3}" dup="${DUP:-0.1}"
dir="$(outdir mixed)"
ids=""
for i in $(seq 1 "$n"); do ids="${ids:+$ids,}$(create_campaign "mixed $i")"; done
targets "$dir/targets.json" $((rate * secs)) "$ids" -dup "$dup" -reads "$reads" -seed 3
attack "$dir" "$rate" "$secs"
echo
for id in ${ids//,/ }; do stats "$id"; done
wrote "$dir"
