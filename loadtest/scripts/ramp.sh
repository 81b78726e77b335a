#!/usr/bin/env bash
# A stepped ramp that finds the knee: each step runs STEP_SECONDS at a rate
# on a fresh campaign; the knee is the first step where p99 exceeds KNEE_X
# times the first step's, success drops below 100%, or the service falls
# behind the requested rate by more than 5%.
#   RATES ("250 500 1000 2000 4000 8000"), STEP_SECONDS (10), KNEE_X (3)
source "$(dirname "$0")/lib.sh"
rates="${RATES:-250 500 1000 2000 4000 8000}" secs="${STEP_SECONDS:-10}" knee_x="${KNEE_X:-3}"
root="$(outdir ramp)"
base_p99="" knee=""
summary="$root/summary.txt"
printf '%8s %12s %10s %10s %9s\n' rate throughput p50_ms p99_ms success | tee "$summary"
for rate in $rates; do
	dir="$root/rate-$rate"
	mkdir -p "$dir"
	id="$(create_campaign "ramp $rate")"
	targets "$dir/targets.json" $((rate * secs)) "$id" -dup 0.1 -seed "$rate" 2>/dev/null
	attack "$dir" "$rate" "$secs" >/dev/null
	tput="$(json_number "$dir/report.json" throughput)"
	p50="$(json_number "$dir/report.json" 50th)"
	p99="$(json_number "$dir/report.json" 99th)"
	success="$(json_number "$dir/report.json" success)"
	printf '%8d %12.1f %10.3f %10.3f %8.2f%%\n' "$rate" "$tput" "$(awk "BEGIN{print $p50/1e6}")" \
		"$(awk "BEGIN{print $p99/1e6}")" "$(awk "BEGIN{print $success*100}")" | tee -a "$summary"
	base_p99="${base_p99:-$p99}"
	if [ -z "$knee" ] && awk "BEGIN{exit !($p99 > $knee_x*$base_p99 || $success < 1 || $tput < 0.95*$rate)}"; then
		knee="$rate"
	fi
done
echo
if [ -n "$knee" ]; then
	echo "Knee: at $knee requests/s p99, errors or throughput left the baseline (p99 > ${knee_x}x the first step's, success < 100% or throughput < 95% of the rate)." | tee -a "$summary"
else
	echo "No knee up to the last step; raise RATES." | tee -a "$summary"
fi
echo "Files: $summary and $root/rate-*/{report.txt,report.json,histogram.hdr,plot.html}"
