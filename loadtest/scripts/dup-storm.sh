#!/usr/bin/env bash
# A storm of repeats on one campaign: 95% of impressions repeat one of a
# small set of keys, so replies for the same key race each other. The
# campaign's total must equal the number of new keys planned.
#   RATE (1000/s), DURATION_S (15), DUP (0.95), USERS (1000)
source "$(dirname "$0")/lib.sh"
rate="${RATE:-1000}" secs="${DURATION_S:-15}" dup="${DUP:-0.95}" users="${USERS:-1000}"
dir="$(outdir dup-storm)"
id="$(create_campaign "duplicate storm")"
targets "$dir/targets.json" $((rate * secs)) "$id" -dup "$dup" -users "$users" -ads 1 -seed 2 2> >(tee "$dir/plan.txt" >&2)
attack "$dir" "$rate" "$secs"
echo
echo "Planned: $(cat "$dir/plan.txt")"
echo "Stats:   $(stats "$id")"
echo "If every request succeeded, total equals the new keys planned."
wrote "$dir"
