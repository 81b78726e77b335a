#!/usr/bin/env bash
# What persistence costs over HTTP (make bench-persistence): the local server
# with the in-memory store alone against the same server with DATA_DIR set,
# where every counted impression waits for the fsync that makes it durable.
# Same harness settings for both, side by side in one run, closed model:
# WORKERS requests in flight, as fast as they go. Both runs must verify
# exactly, so the comparison is also a correctness check of the persistent
# store under load.
#   DURATION (10s), WORKERS (64), CONNECTIONS (64), ROUNDS (1)
source "$(dirname "$0")/server.sh"
duration="${DURATION:-10s}" workers="${WORKERS:-64}" rounds="${ROUNDS:-1}" connections="${CONNECTIONS:-64}"
build
key="$(new_key)"
data_dir="$(mktemp -d)"
trap 'stop_servers; rm -rf "$data_dir"' EXIT
start_server memory bin/local ADMIN_API_KEYS="$key"
memory_url="$SERVER_URL"
start_server persistent bin/local ADMIN_API_KEYS="$key" DATA_DIR="$data_dir"
persistent_url="$SERVER_URL"
root="out/loadtest/bench-persistence-$(stamp)"
mkdir -p "$root"
common=(-duration "$duration" -connections "$connections" -rate 0 -workers "$workers" -max-workers "$workers"
	-campaigns 4 -users 100000000 -ads 1 -dup 0.1 -reads 0 -timeout 5s -progress 0)

# measure NAME URL runs the harness and sets TPUT (requests/s) and P99 (ns).
measure() {
	local dir="$root/$1"
	LOADTEST_ADMIN_KEY="$key" bin/loadtest -target "$2" "${common[@]}" -out "$dir" >"$dir.txt" 2>&1 ||
		{ cat "$dir.txt" >&2; exit 1; }
	TPUT="$(grep -o '"throughput":[0-9.e+-]*' "$dir/report.json" | cut -d: -f2)"
	P99="$(grep -o '"99th":[0-9]*' "$dir/report.json" | cut -d: -f2)"
}

for round in $(seq 1 "$rounds"); do
	measure "r$round-memory" "$memory_url"
	m_tput="$TPUT" m_p99="$P99"
	measure "r$round-persistent" "$persistent_url"
	p_tput="$TPUT" p_p99="$P99"
	awk -v r="$round" -v mt="$m_tput" -v pt="$p_tput" -v mp="$m_p99" -v pp="$p_p99" 'BEGIN {
		printf "Round %d (%s each, %s requests in flight, verified exactly)\n", r, "'"$duration"'", "'"$workers"'"
		printf "  %-12s %14s %14s %9s\n", "", "memory", "DATA_DIR", "ratio"
		printf "  %-12s %12.0f/s %12.0f/s %9.3f\n", "throughput", mt, pt, pt / mt
		printf "  %-12s %12.3fms %12.3fms %8.2fx\n", "p99", mp / 1e6, pp / 1e6, pp / mp
	}' | tee -a "$root/summary.txt"
done
echo "Files: $root/summary.txt and $root/r*-{memory,persistent}{.txt,/report.json,/histogram.hdr,/plot.html}"
