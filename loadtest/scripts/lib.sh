# Shared by the attack scripts; source it, do not run it.
#
# Settings, all from the environment:
#   TARGET       base URL of the API            (default http://127.0.0.1:8080)
#   VEGETA       the vegeta CLI                 (default bin/vegeta, installed by `make vegeta`)
#   LOADTEST     the harness, used to plan bodies (default: go run ./loadtest)
#   ADMIN_KEY    admin API key for campaign and stats routes (default $LOADTEST_ADMIN_KEY)
#   OUT          directory for the results      (default out/loadtest/<scenario>-<time>)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
TARGET="${TARGET:-http://127.0.0.1:8080}"
TARGET="${TARGET%/}"
VEGETA="${VEGETA:-bin/vegeta}"
ADMIN_KEY="${ADMIN_KEY:-${LOADTEST_ADMIN_KEY:-}}"
read -r -a LOADTEST <<<"${LOADTEST:-go run ./loadtest}"

if [ "$VEGETA" = bin/vegeta ] && [ ! -x bin/vegeta ]; then
	make vegeta
fi
if ! command -v "$VEGETA" >/dev/null; then
	echo "vegeta CLI not found at $VEGETA: run 'make vegeta' or set VEGETA" >&2
	exit 1
fi

# outdir NAME makes and prints the directory for this run's files.
outdir() {
	local dir="${OUT:-out/loadtest/$1-$(date -u +%Y%m%dT%H%M%SZ)}"
	mkdir -p "$dir"
	echo "$dir"
}

auth=()
if [ -n "$ADMIN_KEY" ]; then auth=(-H "Authorization: Bearer $ADMIN_KEY"); fi

# create_campaign NAME creates a campaign that started an hour ago and
# prints its id.
create_campaign() {
	local start reply
	start="$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)"
	reply="$(curl -sS --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' \
		-d "{\"name\":\"$1\",\"start_time\":\"$start\"}" "$TARGET/api/v1/campaigns")"
	sed -n 's/.*"id":"\([^"]*\)".*/\1/p' <<<"$reply"
}

# stats ID prints a campaign's stats.
stats() {
	curl -sS --fail-with-body "${auth[@]}" "$TARGET/api/v1/campaigns/$1/stats"
}

# targets FILE COUNT IDS [harness flags...] plans COUNT requests for the
# comma-separated campaign IDS into FILE, as vegeta JSON targets.
targets() {
	local file="$1" count="$2" ids="$3"
	shift 3
	"${LOADTEST[@]}" -target "$TARGET" -campaign-ids "$ids" -emit "$count" -admin-key "$ADMIN_KEY" "$@" >"$file"
}

# attack DIR RATE DURATION_S runs vegeta over DIR/targets.json and writes
# results.bin, report.txt, report.json, histogram.hdr and plot.html to DIR.
attack() {
	local dir="$1" rate="$2" secs="$3"
	"$VEGETA" attack -format=json -targets="$dir/targets.json" -rate="$rate" -duration="${secs}s" \
		-timeout=5s -workers=16 -max-workers=512 -name="$(basename "$dir")" >"$dir/results.bin"
	"$VEGETA" report <"$dir/results.bin" | tee "$dir/report.txt"
	"$VEGETA" report -type=json <"$dir/results.bin" >"$dir/report.json"
	"$VEGETA" report -type=hdrplot <"$dir/results.bin" >"$dir/histogram.hdr"
	"$VEGETA" plot -title="$(basename "$dir")" "$dir/results.bin" >"$dir/plot.html"
}

# json_number FILE KEY prints the first number after "KEY": in FILE; enough
# for vegeta's one-line JSON report.
json_number() {
	grep -o "\"$2\":[0-9.e+-]*" "$1" | head -n1 | cut -d: -f2
}

# wrote DIR says where the files are.
wrote() {
	echo
	echo "Files: $1/{targets.json,results.bin,report.txt,report.json,histogram.hdr,plot.html}"
}
