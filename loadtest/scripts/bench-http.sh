#!/usr/bin/env bash
# The HTTP budget (make bench-http): the service's POST /api/v1/impressions
# against the floor, a bare net/http handler that only decodes the same
# body, with the same harness settings, side by side in one run:
#   1. closed model: WORKERS requests in flight, as fast as they go;
#   2. open model: a fixed rate of half the floor's maximum.
# Targets: service throughput >= 95% of the floor's, with the per-request
# log line on; service p99 at the fixed rate <= 1.3x the floor's.
# Both models cap the connections at CONNECTIONS: in the open model a
# request waits for a free connection, and the wait counts in its latency.
# Unbounded, a stall of the shared machine makes vegeta start a worker and a
# new connection for every request that falls due, thousands at once on 2
# cores, and such runs collapsed (p99 in seconds, throughput far below the
# rate) for the floor as often as for the service.
#   DURATION (10s), WORKERS (32), CONNECTIONS (64), ROUNDS (1)
#   SERVICE_ENV: extra VAR=VALUE settings for the service, space-separated,
#   such as "LOG_LEVEL=warn" to see what the per-request log line costs.
#   BASELINE: a git revision, such as main~3. Its local server is built
#   too and measured in every round right after this tree's, with the same
#   settings, so that a change is judged against the code before it in the
#   same run; the summary gives the medians of the paired ratios.
#   BASELINE_ENV: settings for the baseline alone, after SERVICE_ENV's:
#   BASELINE=HEAD BASELINE_ENV=FILTER_BOTS=false measures what a setting
#   costs, this tree against itself with the setting changed.
source "$(dirname "$0")/server.sh"
duration="${DURATION:-10s}" workers="${WORKERS:-32}" rounds="${ROUNDS:-1}" connections="${CONNECTIONS:-64}"
build
start_server floor bin/floor
floor_url="$SERVER_URL"
key="$(new_key)"
read -r -a service_env <<<"${SERVICE_ENV:-}"
start_server service bin/local ADMIN_API_KEYS="$key" "${service_env[@]}"
service_url="$SERVER_URL"
baseline_url=""
if [ -n "${BASELINE:-}" ]; then
	build_revision "$BASELINE" bin/local-baseline
	read -r -a baseline_env <<<"${BASELINE_ENV:-}"
	start_server baseline bin/local-baseline ADMIN_API_KEYS="$key" "${service_env[@]}" "${baseline_env[@]}"
	baseline_url="$SERVER_URL"
fi
root="out/loadtest/bench-http-$(stamp)"
common=(-duration "$duration" -connections "$connections" -campaigns 1 -users 100000000 -ads 1 -dup 0 -reads 0 -timeout 5s -progress 0)

# measure NAME URL FLAGS... runs the harness and sets TPUT (requests/s),
# P99 (ns) and OK (success ratio) from its JSON report.
measure() {
	local name="$1" url="$2"
	shift 2
	local dir="$root/$name" extra=()
	if [ "$url" = "$floor_url" ]; then extra=(-campaign-ids floor -verify=false); fi
	# A baseline may predate the reporting routes and reach; its counts
	# are still verified.
	if [ -n "$baseline_url" ] && [ "$url" = "$baseline_url" ]; then extra=(-verify-reports=false -verify-reach=false); fi
	LOADTEST_ADMIN_KEY="$key" bin/loadtest -target "$url" "${common[@]}" "${extra[@]}" -out "$dir" "$@" >"$dir.txt" 2>&1 ||
		{ cat "$dir.txt" >&2; exit 1; }
	local j="$dir/report.json"
	TPUT="$(grep -o '"throughput":[0-9.e+-]*' "$j" | cut -d: -f2)"
	P99="$(grep -o '"99th":[0-9]*' "$j" | cut -d: -f2)"
	OK="$(grep -o '"success":[0-9.e+-]*' "$j" | cut -d: -f2)"
}

mkdir -p "$root"
for round in $(seq 1 "$rounds"); do
	measure "r$round-floor-closed" "$floor_url" -rate 0 -workers "$workers" -max-workers "$workers"
	f_tput="$TPUT" f_cp99="$P99" f_cok="$OK"
	measure "r$round-service-closed" "$service_url" -rate 0 -workers "$workers" -max-workers "$workers"
	s_tput="$TPUT" s_cp99="$P99" s_cok="$OK"
	half="$(awk "BEGIN{printf \"%d\", $f_tput/2}")"
	measure "r$round-floor-open" "$floor_url" -rate "$half" -workers "$workers"
	f_otput="$TPUT" f_p99="$P99" f_ook="$OK"
	measure "r$round-service-open" "$service_url" -rate "$half" -workers "$workers"
	s_otput="$TPUT" s_p99="$P99" s_ook="$OK"
	awk -v r="$round" -v ft="$f_tput" -v st="$s_tput" -v fcp="$f_cp99" -v scp="$s_cp99" -v half="$half" \
		-v fot="$f_otput" -v sot="$s_otput" -v fp="$f_p99" -v sp="$s_p99" \
		-v fs="$f_cok" -v ss="$s_cok" -v fos="$f_ook" -v sos="$s_ook" 'BEGIN {
		tr = st / ft; pr = sp / fp
		printf "Round %d (%s each, %s workers in the closed model, at most %s connections)\n", r, "'"$duration"'", "'"$workers"'", "'"$connections"'"
		printf "  %-32s %14s %14s %9s  %s\n", "", "floor", "service", "ratio", "target"
		printf "  %-32s %12.0f/s %12.0f/s %9.3f  >= 0.95 %s\n", "closed: throughput", ft, st, tr, (tr >= 0.95 ? "met" : "MISSED by " sprintf("%.1f", (0.95 - tr) * 100) " points")
		printf "  %-32s %12.3fms %12.3fms %8.2fx\n", "closed: p99", fcp / 1e6, scp / 1e6, scp / fcp
		printf "  %-32s %12.0f/s %12.0f/s\n", "open at " half "/s: throughput", fot, sot
		printf "  %-32s %12.3fms %12.3fms %8.2fx  <= 1.30x %s\n", "open at " half "/s: p99", fp / 1e6, sp / 1e6, pr, (pr <= 1.3 ? "met" : "MISSED by " sprintf("%.2f", pr - 1.3) "x")
		printf "  %-32s %13.2f%% %13.2f%%\n", "success closed", fs * 100, ss * 100
		printf "  %-32s %13.2f%% %13.2f%%\n", "success open", fos * 100, sos * 100
	}' | tee -a "$root/summary.txt"
	if [ -n "$baseline_url" ]; then
		measure "r$round-baseline-closed" "$baseline_url" -rate 0 -workers "$workers" -max-workers "$workers"
		b_tput="$TPUT"
		measure "r$round-baseline-open" "$baseline_url" -rate "$half" -workers "$workers"
		b_p99="$P99"
		# One line per round for the medians: service/floor, baseline/floor
		# and service/baseline, for throughput and for the open-model p99.
		awk -v ft="$f_tput" -v st="$s_tput" -v bt="$b_tput" -v fp="$f_p99" -v sp="$s_p99" -v bp="$b_p99" \
			'BEGIN { printf "%.4f %.4f %.4f %.4f %.4f %.4f\n", st/ft, bt/ft, st/bt, sp/fp, bp/fp, sp/bp }' >>"$root/paired.txt"
		awk -v bt="$b_tput" -v bp="$b_p99" -v st="$s_tput" -v sp="$s_p99" 'BEGIN {
			printf "  %-32s %12.0f/s  service/baseline %.3f\n", "baseline closed: throughput", bt, st / bt
			printf "  %-32s %12.3fms  service/baseline %.2fx\n", "baseline open: p99", bp / 1e6, sp / bp
		}' | tee -a "$root/summary.txt"
	fi
done
if [ -n "$baseline_url" ]; then
	# median COLUMN prints the median of one column of paired.txt.
	median() { cut -d' ' -f"$1" "$root/paired.txt" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
	{
		echo "Medians over $rounds paired rounds (baseline: $BASELINE)"
		echo "  closed throughput: service/floor $(median 1), baseline/floor $(median 2), service/baseline $(median 3)"
		echo "  open p99:          service/floor $(median 4), baseline/floor $(median 5), service/baseline $(median 6)"
	} | tee -a "$root/summary.txt"
fi
echo "Files: $root/summary.txt and $root/r*-{floor,service}-{closed,open}{.txt,/report.json,/histogram.hdr,/plot.html}"
