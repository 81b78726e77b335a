#!/usr/bin/env bash
# Resident memory of the local server after one million distinct
# impressions (make rss): the harness sends them as fast as 32 workers go,
# verifies the counts, then the server's VmRSS and VmHWM are read from
# /proc. IMPRESSIONS overrides the million.
source "$(dirname "$0")/server.sh"
n="${IMPRESSIONS:-1000000}"
build
key="$(new_key)"
start_server local bin/local ADMIN_API_KEYS="$key"
rss() { grep -E '^(VmRSS|VmHWM)' "/proc/$SERVER_PID/status" | tr -s ' \t' ' ' | tr '\n' ' '; }
echo "idle:  $(rss)"
LOADTEST_ADMIN_KEY="$key" bin/loadtest -target "$SERVER_URL" -rate 0 -workers 32 -max-workers 32 \
	-requests "$n" -duration 30m -campaigns 4 -users 1000000 -ads 1 -dup 0 -seed 4 -progress 10s
echo
echo "after $n distinct impressions: $(rss)"
