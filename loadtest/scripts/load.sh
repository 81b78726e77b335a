#!/usr/bin/env bash
# The standard load test (make load): the local server on a free port, 20 s
# of impressions at 1000/s over 8 campaigns with 20% repeats and 5% stats
# reads, then the report and the verification. The server is stopped
# whatever happens. RATE and DURATION override the load.
source "$(dirname "$0")/server.sh"
build
key="$(new_key)"
start_server local bin/local ADMIN_API_KEYS="$key"
dir="out/loadtest/load-$(stamp)"
LOADTEST_ADMIN_KEY="$key" bin/loadtest -target "$SERVER_URL" \
	-rate "${RATE:-1000}" -duration "${DURATION:-20s}" -campaigns 8 -dup 0.2 -reads 0.05 -seed 1 -out "$dir"
