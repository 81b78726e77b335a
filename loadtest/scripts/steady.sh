#!/usr/bin/env bash
# A steady rate of impressions on a few campaigns, 20% repeats.
#   RATE (500/s), DURATION_S (30), CAMPAIGNS (4), DUP (0.2)
source "$(dirname "$0")/lib.sh"
rate="${RATE:-500}" secs="${DURATION_S:-30}" n="${CAMPAIGNS:-4}" dup="${DUP:-0.2}"
dir="$(outdir steady)"
ids=""
for i in $(seq 1 "$n"); do ids="${ids:+$ids,}$(create_campaign "steady $i")"; done
targets "$dir/targets.json" $((rate * secs)) "$ids" -dup "$dup" -seed 1
attack "$dir" "$rate" "$secs"
echo
for id in ${ids//,/ }; do stats "$id"; done
wrote "$dir"
