#!/usr/bin/env bash
# A stepped ramp that finds the knee: each step runs STEP_SECONDS at a rate
# on a fresh campaign. It reports two knees: where latency rises (p99 above
# KNEE_X times the first step's) and where the service saturates (errors, or
# throughput more than 5% below the rate).
#   RATES ("1000 2000 4000 8000 12000 16000 24000"), STEP_SECONDS (10), KNEE_X (3)
source "$(dirname "$0")/lib.sh"
rates="${RATES:-1000 2000 4000 8000 12000 16000 24000}" secs="${STEP_SECONDS:-10}" knee_x="${KNEE_X:-3}"
root="$(outdir ramp)"
base_p99="" latency_knee="" saturation=""
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
	if [ -z "$latency_knee" ] && awk "BEGIN{exit !($p99 > $knee_x*$base_p99)}"; then
		latency_knee="$rate"
	fi
	if [ -z "$saturation" ] && awk "BEGIN{exit !($success < 1 || $tput < 0.95*$rate)}"; then
		saturation="$rate"
	fi
done
echo
{
	echo "Latency knee: ${latency_knee:-none up to the last step} (first step with p99 above ${knee_x}x the first step's)"
	echo "Saturation:   ${saturation:-none up to the last step} (first step with errors or throughput below 95% of the rate)"
} | tee -a "$summary"
echo "Files: $summary and $root/rate-*/{report.txt,report.json,histogram.hdr,plot.html}"
