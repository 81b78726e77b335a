#!/usr/bin/env bash
# Ingest throughput (make bench-ingest): impressions per second through
# POST /api/v1/impressions (one per request) and POST
# /api/v1/impressions/batch at each batch size, with the in-memory store
# alone and with DATA_DIR set, side by side in one run as paired rounds:
# each round measures every route with both stores, one right after the
# other, each on a fresh server (and a fresh data directory), closed model,
# DUP repeats. Every run is verified exactly by the harness, and a run that
# fails verification fails the script. Then the in-process ceiling: the
# store's batch benchmark. Prints a table of medians and the targets:
#   batches of 1,000, memory store:  >= 500,000 impressions/s
#   batches of 1,000, DATA_DIR:      >= 250,000 impressions/s
# Impressions per second counts those answered counted, duplicate or
# filtered, over the attack plus the wait for its last replies.
#
#   DURATION (10s), ROUNDS (3), SIZES ("10 100 1000"), DUP (0.2),
#   WORKERS_SINGLE (64) and WORKERS_BATCH (16): requests in flight, and
#   as many connections;
#   SERVICE_ENV: extra VAR=VALUE settings for the service, space-separated;
#   LOADTEST_FLAGS: extra harness flags, space-separated, such as
#   "-item-ua" (every batch item forwards a User-Agent, which the service
#   then judges) or "-bot-share 0.05";
#   CEILING_BENCH (BenchmarkRecordImpressions), CEILING_PKG
#   (./shared/memstore), BENCHTIME (1s): the ceiling benchmark, run ROUNDS
#   times. A benchmark that reports an "impressions/s" metric is quoted as
#   is; one whose name says its batch size (/size=N, /batch=N or /n=N) is
#   converted from ns/op; others are shown raw.
source "$(dirname "$0")/server.sh"
duration="${DURATION:-10s}" rounds="${ROUNDS:-3}" sizes="${SIZES:-10 100 1000}" dup="${DUP:-0.2}"
workers_single="${WORKERS_SINGLE:-64}" workers_batch="${WORKERS_BATCH:-16}"
ceiling_bench="${CEILING_BENCH:-BenchmarkRecordImpressions}" ceiling_pkg="${CEILING_PKG:-./shared/memstore}" benchtime="${BENCHTIME:-1s}"
read -r -a service_env <<<"${SERVICE_ENV:-}"
read -r -a extra_flags <<<"${LOADTEST_FLAGS:-}"
build
key="$(new_key)"
root="out/loadtest/bench-ingest-$(stamp)"
mkdir -p "$root"
data_root="$root/data"
trap 'stop_servers; rm -rf "$data_root"' EXIT
common=(-rate 0 -duration "$duration" -campaigns 4 -users 100000000 -ads 1 -dup "$dup" -reads 0 -timeout 5s -progress 0)

{
	echo "bench-ingest $(date -u +%Y-%m-%dT%H:%M:%SZ); nproc $(nproc); $(grep -m1 'model name' /proc/cpuinfo | tr -s ' \t' ' ')"
	echo "load average at the start: $(cut -d' ' -f1-3 /proc/loadavg); $(go version)"
	echo "DURATION=$duration ROUNDS=$rounds SIZES=\"$sizes\" DUP=$dup WORKERS_SINGLE=$workers_single WORKERS_BATCH=$workers_batch SERVICE_ENV=\"${SERVICE_ENV:-}\" LOADTEST_FLAGS=\"${LOADTEST_FLAGS:-}\""
} | tee "$root/summary.txt"

# json_field FILE KEY prints the number after "KEY": in a one-line JSON file.
json_field() {
	grep -o "\"$2\":[0-9.e+-]*" "$1" | head -n1 | cut -d: -f2
}

# measure ROUND STORE ROUTE runs one verified attack on a fresh server:
# STORE is memory or datadir, ROUTE is single or batchN. It appends
# "ROUND STORE ROUTE RATE" to results.txt and prints a line.
measure() {
	local round="$1" store="$2" route="$3" name="r$1-$2-$3"
	local dir="$root/$name" env=(ADMIN_API_KEYS="$key" "${service_env[@]}") args=() data=""
	if [ "$store" = datadir ]; then
		data="$data_root/$name"
		mkdir -p "$data"
		env+=(DATA_DIR="$data")
	fi
	case "$route" in
	single) args=(-workers "$workers_single" -max-workers "$workers_single" -connections "$workers_single") ;;
	batch*) args=(-batch "${route#batch}" -workers "$workers_batch" -max-workers "$workers_batch" -connections "$workers_batch") ;;
	esac
	start_server "bench-ingest-$store" bin/local "${env[@]}"
	if ! LOADTEST_ADMIN_KEY="$key" bin/loadtest -target "$SERVER_URL" "${common[@]}" "${args[@]}" "${extra_flags[@]}" -out "$dir" >"$dir.txt" 2>&1; then
		cat "$dir.txt" >&2
		echo "bench-ingest: $name failed or did not verify exactly; output in $dir.txt, server log in out/loadtest/bench-ingest-$store.log" >&2
		exit 1
	fi
	stop_server "$SERVER_PID"
	if [ -n "$data" ]; then rm -rf "$data"; fi
	local j="$dir/impressions.json" rate unknown requests rejected
	rate="$(json_field "$j" per_second)" unknown="$(json_field "$j" unknown)" requests="$(json_field "$j" requests)"
	rejected="$(json_field "$j" rejected)"
	if [ "$rejected" != 0 ]; then
		# Every impression sent is valid: a rejection means the route or
		# the setup is wrong, and the rate would measure nothing.
		echo "bench-ingest: $name: $rejected impressions rejected (does the server have the route?); see $dir.txt" >&2
		exit 1
	fi
	echo "$round $store $route $rate" >>"$root/results.txt"
	printf '  round %d  %-8s %-10s %12.0f impressions/s  %8d requests  %d without a definite answer  verified\n' \
		"$round" "$store" "$route" "$rate" "$requests" "$unknown" | tee -a "$root/summary.txt"
}

routes=(single)
for size in $sizes; do routes+=("batch$size"); done
for round in $(seq 1 "$rounds"); do
	for route in "${routes[@]}"; do
		measure "$round" memory "$route"
		measure "$round" datadir "$route"
	done
done

# The ceiling: the store alone, in this process, no HTTP.
ceiling="$root/ceiling.txt"
ceiling_ok=1
go test -run '^$' -bench "$ceiling_bench" -benchmem -benchtime "$benchtime" -count "$rounds" "$ceiling_pkg" >"$ceiling" 2>&1 || ceiling_ok=0

awk -v rounds="$rounds" -v duration="$duration" -v dup="$dup" -v sizes="$sizes" '
	function median(list,   n, v, i, j, t) {
		n = split(list, v, " ")
		for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
		return n == 0 ? 0 : (n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2)
	}
	function verdict(got, want) {
		return got >= want ? "met" : sprintf("MISSED: %.2f of the target", got / want)
	}
	{ rate[$1, $2, $3] = $4; rates[$2, $3] = rates[$2, $3] " " $4 }
	END {
		n = split("single " sizes, rs, " ")
		for (i = 2; i <= n; i++) rs[i] = "batch" rs[i]
		printf "\nImpressions per second: medians of %d paired rounds, %s each, %s duplicates, every run verified exactly\n", rounds, duration, dup
		printf "  %-11s %13s %13s %16s %16s %16s\n", "route", "memory", "DATA_DIR", "DATA_DIR/memory", "memory/single", "DATA_DIR/single"
		for (i = 1; i <= n; i++) {
			r = rs[i]; dm = ""; ms = ""; ds = ""
			for (k = 1; k <= rounds; k++) {
				dm = dm " " rate[k, "datadir", r] / rate[k, "memory", r]
				ms = ms " " rate[k, "memory", r] / rate[k, "memory", "single"]
				ds = ds " " rate[k, "datadir", r] / rate[k, "datadir", "single"]
			}
			med[r, "memory"] = median(rates["memory", r]); med[r, "datadir"] = median(rates["datadir", r])
			label = r == "single" ? "single" : "batch " substr(r, 6)
			printf "  %-11s %11.0f/s %11.0f/s %16.3f %16.2f %16.2f\n", label, med[r, "memory"], med[r, "datadir"], median(dm), median(ms), median(ds)
		}
		printf "  (ratios are medians of the per-round ratios)\n"
		printf "\nTargets (median of the rounds)\n"
		if (("batch1000", "memory") in med) {
			printf "  batch 1000, memory store: >= 500000/s: %.0f/s, %s\n", med["batch1000", "memory"], verdict(med["batch1000", "memory"], 500000)
			printf "  batch 1000, DATA_DIR:     >= 250000/s: %.0f/s, %s\n", med["batch1000", "datadir"], verdict(med["batch1000", "datadir"], 250000)
		} else {
			printf "  not judged: SIZES does not include 1000\n"
		}
	}' "$root/results.txt" | tee -a "$root/summary.txt"

{
	echo
	echo "In-process ceiling: go test -run '^\$' -bench '$ceiling_bench' -benchmem -benchtime $benchtime -count $rounds $ceiling_pkg"
	if [ "$ceiling_ok" = 0 ]; then
		echo "  the benchmark run failed:"
		sed 's/^/    /' "$ceiling"
	elif ! grep -q '^Benchmark' "$ceiling"; then
		echo "  no benchmark in $ceiling_pkg matches $ceiling_bench (not written yet?)"
	else
		awk '
			function median(list,   n, v, i, j, t) {
				n = split(list, v, " ")
				for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j-1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
				return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2
			}
			/^Benchmark/ {
				name = $1
				if (!(name in seen)) { seen[name] = 1; order[++count] = name }
				for (i = 3; i < NF; i++) {
					if ($(i+1) == "ns/op") ns[name] = ns[name] " " $i
					if ($(i+1) == "impressions/s") ips[name] = ips[name] " " $i
				}
			}
			END {
				printf "  %-56s %14s %26s\n", "benchmark (medians)", "ns/op", "impressions/s"
				for (k = 1; k <= count; k++) {
					name = order[k]; rate = "-"
					if (name in ips) {
						rate = sprintf("%.0f", median(ips[name]))
					} else if (match(tolower(name), /\/(size|batch|n)=[0-9]+/)) {
						per = substr(name, RSTART, RLENGTH); sub(/.*=/, "", per)
						rate = sprintf("%.0f (from ns/op)", per * 1e9 / median(ns[name]))
					}
					printf "  %-56s %14.0f %26s\n", name, median(ns[name]), rate
				}
			}' "$ceiling"
	fi
	echo
	echo "Files: $root/summary.txt, results.txt, ceiling.txt, and r<round>-<store>-<route>{.txt,/report.json,/impressions.json,/histogram.hdr,/plot.html}"
} | tee -a "$root/summary.txt"
if [ "$ceiling_ok" = 0 ]; then exit 1; fi
