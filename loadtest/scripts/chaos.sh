#!/usr/bin/env bash
# make chaos: the attacks the service is known to survive, run against the
# real local server binary, each one verified. Every scenario starts its own
# servers on 127.0.0.1 (all traffic goes there), bounds every loop by time
# and count, and stops what it started however it ends. The traffic and the
# checks are bin/chaos (loadtest/chaos): it writes every answer to a ledger
# that outlives the restarts, and afterwards checks every key against the
# server (see loadtest/chaos/verify.go). The run exits 1 if anything
# acknowledged was lost or counted twice, or a damaged directory started.
#
#   kill9        CYCLES kill -9 under load, DATA_DIR
#   kill9-fast   the same with SNAPSHOT_INTERVAL=1s FSYNC_INTERVAL=20ms, 4x WORKERS
#   sigterm      CYCLES SIGTERM under load
#   sigterm-1ms  the same with SHUTDOWN_TIMEOUT=1ms
#   replay       REPLAY_KILLS kill -9 while the server replays its log
#   campaigns    CYCLES kill -9 while campaigns are being created
#   corrupt      damaged snapshot, flipped byte mid-log, appended garbage, a
#                second server on the directory: each must refuse to start
#                and name the file
#   dup          DUP_KEYS keys x DUP_COPIES identical concurrent requests
#   slow         a slow header and a slow body are cut at 5 s and ~10 s
#   idle         IDLE_CONNS idle connections do not raise latency
#
# Settings: SCENARIOS (all of the above, space-separated), CYCLES (10),
# LOAD_MS (1000-2500: each cycle's load runs a random time in this range
# before the kill), WORKERS (16), REPLAY_KILLS (15), DUP_KEYS (500),
# DUP_COPIES (32), IDLE_CONNS (1000). Files go to out/loadtest/chaos-<time>/.
source "$(dirname "$0")/server.sh"

SCENARIOS="${SCENARIOS:-kill9 kill9-fast sigterm sigterm-1ms replay campaigns corrupt dup slow idle}"
CYCLES="${CYCLES:-10}"
LOAD_MS="${LOAD_MS:-1000-2500}"
WORKERS="${WORKERS:-16}"
REPLAY_KILLS="${REPLAY_KILLS:-15}"
DUP_KEYS="${DUP_KEYS:-500}"
DUP_COPIES="${DUP_COPIES:-32}"
IDLE_CONNS="${IDLE_CONNS:-1000}"

ROOT="out/loadtest/chaos-$(stamp)"
ROWS="$ROOT/summary.rows"
mkdir -p "$ROOT"
: >"$ROWS"
KEY="$(new_key)"
export LOADTEST_ADMIN_KEY="$KEY"
HELPER_PIDS=()

# cleanup ends the traffic helpers this shell started, then its servers.
cleanup() {
	local pid
	for pid in "${HELPER_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	HELPER_PIDS=()
	for pid in "${SERVER_PIDS[@]}"; do
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	SERVER_PIDS=()
}
trap cleanup EXIT

# without PID ARRAY... prints ARRAY's elements except PID.
without() {
	local pid="$1" p
	shift
	for p in "$@"; do [ "$p" = "$pid" ] || echo "$p"; done
}

# serve NAME DATA_DIR PORT [VAR=VALUE...] starts bin/local with its state in
# DATA_DIR ("" for none) on PORT (0 for a free one), logging to
# $DIR/NAME.log, and waits until it listens. Sets SERVER_PID, SERVER_PORT
# and SERVER_URL.
serve() {
	local name="$1" data="$2" port="$3" log="$DIR/$1.log" deadline=$((SECONDS + 60))
	shift 3
	: >"$log"
	env ADMIN_API_KEYS="$KEY" LOG_LEVEL=warn ${data:+DATA_DIR="$data"} PORT="$port" "$@" bin/local >"$log" 2>&1 &
	SERVER_PID=$!
	SERVER_PIDS+=("$SERVER_PID")
	until grep -q '"msg":"listening"' "$log"; do
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			echo "$name did not start; $log says:" >&2
			tail -n 20 "$log" >&2
			return 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "$name did not listen within 60s; log $log" >&2
			return 1
		fi
		sleep 0.05
	done
	SERVER_PORT="$(sed -n 's/.*"msg":"listening","addr":"[^"]*:\([0-9]*\)".*/\1/p' "$log" | head -n1)"
	SERVER_URL="http://127.0.0.1:$SERVER_PORT"
}

# halt SIGNAL sends SIGNAL to the last server started and waits for it to
# exit, at most 30 s. Sets HALT_RC to its exit status.
halt() {
	local pid="$SERVER_PID" deadline=$((SECONDS + 30))
	# Bash reports a job killed by a signal on its stderr; that is the
	# point here, so the report is silenced.
	exec 3>&2 2>/dev/null
	kill -"$1" "$pid" || true
	while kill -0 "$pid"; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			kill -KILL "$pid" || true
			exec 2>&3 3>&-
			echo "server $pid did not stop within 30s of SIG$1" >&2
			return 1
		fi
		sleep 0.02
	done
	HALT_RC=0
	wait "$pid" || HALT_RC=$?
	exec 2>&3 3>&-
	mapfile -t SERVER_PIDS < <(without "$pid" "${SERVER_PIDS[@]}")
}

# helper ARGS... runs bin/chaos ARGS in the background, output appended to
# $DIR/helpers.txt, and sets HELPER_PID.
helper() {
	bin/chaos "$@" >>"$DIR/helpers.txt" 2>&1 &
	HELPER_PID=$!
	HELPER_PIDS+=("$HELPER_PID")
}

# stop_helper stops the last helper and waits for it to write its ledger.
stop_helper() {
	local pid="$HELPER_PID"
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait "$pid"; then
		echo "bin/chaos failed; see $DIR/helpers.txt" >&2
		return 1
	fi
	mapfile -t HELPER_PIDS < <(without "$pid" "${HELPER_PIDS[@]}")
}

# pause_load sleeps a random time in LOAD_MS.
pause_load() {
	local lo="${LOAD_MS%-*}" hi="${LOAD_MS#*-}"
	local ms=$((lo + RANDOM % (hi - lo + 1)))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
}

# row NAME CYCLES REQUESTS ACKED LOST DOUBLE RESULT adds a line to the summary.
row() {
	local IFS='|'
	echo "$*" >>"$ROWS"
}

# verify_row NAME CYCLES LEDGER runs bin/chaos verify against SERVER_URL and
# adds its row; it fails if verification does.
verify_row() {
	local name="$1" cycles="$2" ledger="$3" rc=0 s
	bin/chaos verify -target "$SERVER_URL" -ledger "$ledger" >"$DIR/verify.txt" 2>&1 || rc=$?
	s="$(grep '^summary ' "$DIR/verify.txt" || true)"
	field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$s"; }
	if [ -z "$s" ]; then
		cat "$DIR/verify.txt" >&2
		row "$name" "$cycles" - - - - "FAIL: verify did not finish, see $DIR/verify.txt"
		return 1
	fi
	local acked
	acked="$(field counted)"
	if [ "$(field campaigns)" != 0 ]; then acked="$(field campaigns) campaigns"; fi
	if [ "$rc" != 0 ]; then
		grep '^PROBLEM' "$DIR/verify.txt" | head -n 5 >&2 || true
		row "$name" "$cycles" "$(field requests)" "$acked" "$(($(field lost) + $(field missing_campaigns)))" "$(field double)" "FAIL"
		return 1
	fi
	row "$name" "$cycles" "$(field requests)" "$acked" 0 0 "ok"
}

# kill_cycles NAME SIGNAL [VAR=VALUE...]: CYCLES times, load, then SIGNAL;
# then a last start and the verification.
kill_cycles() {
	local name="$1" sig="$2" c ids port
	shift 2
	serve "$name-1" "$DIR/data" 0 "$@"
	port="$SERVER_PORT"
	ids="$(bin/chaos create -target "$SERVER_URL" -n 2)"
	for c in $(seq 1 "$CYCLES"); do
		[ "$c" = 1 ] || serve "$name-$c" "$DIR/data" "$port" "$@"
		helper load -target "$SERVER_URL" -campaign-ids "$ids" -ledger "$DIR/ledger" -prefix "c$c" \
			-workers "$WORKERS" -duration 60s
		pause_load
		halt "$sig"
		stop_helper
		if [ -n "${CLEAN_EXIT:-}" ] && [ "$HALT_RC" != 0 ]; then
			echo "cycle $c: the server exited $HALT_RC on SIG$sig, not 0; log $DIR/$name-$c.log" >&2
			tail -n 5 "$DIR/$name-$c.log" >&2
			return 1
		fi
		echo "  cycle $c/$CYCLES: SIG$sig"
	done
	serve "$name-verify" "$DIR/data" "$port" "$@"
	verify_row "$name" "$CYCLES" "$DIR/ledger"
	halt TERM
}

scenario_kill9() { kill_cycles kill9 KILL; }
# With a 20 ms fsync wait each request takes 20 ms, so more are in flight.
scenario_kill9-fast() { WORKERS=$((WORKERS * 4)) kill_cycles kill9-fast KILL SNAPSHOT_INTERVAL=1s FSYNC_INTERVAL=20ms; }
# A graceful stop that drains in time must also exit 0.
scenario_sigterm() { CLEAN_EXIT=1 kill_cycles sigterm TERM; }
scenario_sigterm-1ms() { kill_cycles sigterm-1ms TERM SHUTDOWN_TIMEOUT=1ms; }

# scenario_replay fills a log with no snapshot, then kills the server at
# random moments of its start, while it replays that log.
scenario_replay() {
	local port ids i began took ts ms early=0 log restored='"msg":"(memstore: restored|listening)"'
	serve replay-fill "$DIR/data" 0 SNAPSHOT_INTERVAL=1h
	port="$SERVER_PORT"
	ids="$(bin/chaos create -target "$SERVER_URL" -n 2)"
	bin/chaos load -target "$SERVER_URL" -campaign-ids "$ids" -ledger "$DIR/ledger" -prefix fill \
		-workers "$WORKERS" -duration 6s >>"$DIR/helpers.txt" 2>&1
	halt KILL
	# How long a start takes to restore, timed finely: at info level the
	# store logs when it has restored, just before the server listens.
	log="$DIR/replay-timed.log"
	began="$(date +%s%N)"
	env ADMIN_API_KEYS="$KEY" LOG_LEVEL=info DATA_DIR="$DIR/data" PORT="$port" SNAPSHOT_INTERVAL=1h bin/local >"$log" 2>&1 &
	SERVER_PID=$!
	SERVER_PIDS+=("$SERVER_PID")
	until grep -qsE "$restored" "$log"; do
		if ! kill -0 "$SERVER_PID" 2>/dev/null || [ $((($(date +%s%N) - began) / 1000000)) -gt 60000 ]; then
			echo "the timed start did not restore; log $log" >&2
			return 1
		fi
		sleep 0.002
	done
	# The server's own timestamp, not the end of the polling above, which
	# a busy machine makes late.
	ts="$(grep -E "$restored" "$log" | head -n1 | sed -n 's/.*"time":"\([^"]*\)".*/\1/p')"
	took=$((($(date -d "$ts" +%s%N) - began) / 1000000))
	halt KILL
	echo "  a start takes ${took}ms to restore its state; killing $REPLAY_KILLS starts at random moments inside that"
	for i in $(seq 1 "$REPLAY_KILLS"); do
		log="$DIR/replay-kill-$i.log"
		# At info level the store says when it has restored.
		env ADMIN_API_KEYS="$KEY" LOG_LEVEL=info DATA_DIR="$DIR/data" PORT="$port" SNAPSHOT_INTERVAL=1h bin/local >"$log" 2>&1 &
		SERVER_PID=$!
		SERVER_PIDS+=("$SERVER_PID")
		ms=$((RANDOM % (took + 1)))
		sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
		halt KILL
		grep -qE "$restored" "$log" || early=$((early + 1))
	done
	echo "  $early of $REPLAY_KILLS kills landed before the store had restored its state"
	serve replay-verify "$DIR/data" "$port"
	verify_row replay "$REPLAY_KILLS kills, $early early" "$DIR/ledger"
	halt TERM
}

# scenario_campaigns kills the server while campaigns are being created.
scenario_campaigns() {
	local port c
	serve campaigns-0 "$DIR/data" 0
	port="$SERVER_PORT"
	for c in $(seq 1 "$CYCLES"); do
		[ "$c" = 1 ] || serve "campaigns-$c" "$DIR/data" "$port"
		helper campaigns -target "$SERVER_URL" -ledger "$DIR/ledger" -prefix "c$c" -duration 60s
		pause_load
		halt KILL
		stop_helper
		echo "  cycle $c/$CYCLES: SIGKILL"
	done
	serve campaigns-verify "$DIR/data" "$port"
	verify_row campaigns "$CYCLES" "$DIR/ledger"
	halt TERM
}

# flip FILE OFFSET inverts the byte at OFFSET.
flip() {
	local b
	b="$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')"
	printf "\\x$(printf %02x $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# refuses NAME DATA_DIR FILE: a server on DATA_DIR must exit with an error
# that names FILE, without ever listening. One that listens is killed at
# once; one that neither exits nor listens within 60 s fails too.
refuses() {
	local name="$1" data="$2" file="$3" log="$DIR/refuse-${1// /-}.log" pid rc=0 offset deadline=$((SECONDS + 60))
	env ADMIN_API_KEYS="$KEY" DATA_DIR="$data" PORT=0 bin/local >"$log" 2>&1 &
	pid=$!
	SERVER_PIDS+=("$pid")
	exec 3>&2 2>/dev/null
	while kill -0 "$pid"; do
		if grep -q '"msg":"listening"' "$log" || [ "$SECONDS" -ge "$deadline" ]; then
			kill -KILL "$pid" || true
			break
		fi
		sleep 0.05
	done
	wait "$pid" || rc=$?
	exec 2>&3 3>&-
	mapfile -t SERVER_PIDS < <(without "$pid" "${SERVER_PIDS[@]}")
	offset="$(grep -o 'offset [0-9]*' "$log" | head -n1 || true)"
	if [ "$rc" = 0 ] || grep -q '"msg":"listening"' "$log"; then
		row "corrupt: $name" - - - - - "FAIL: it started; log $log"
		return 1
	fi
	if ! grep -qF "$file" "$log"; then
		row "corrupt: $name" - - - - - "FAIL: refused (exit $rc) without naming $file: $(tail -n1 "$log")"
		return 1
	fi
	local what="$(basename "$file")"
	[ -d "$file" ] && what="the directory $what"
	row "corrupt: $name" - - - - - "ok: refused, names $what${offset:+ at $offset}"
	echo "  $name: $(tail -n1 "$log")"
}

# scenario_corrupt builds a directory with a snapshot and a log, checks that
# an undamaged copy starts and verifies, then damages copies.
scenario_corrupt() {
	local base="$DIR/base" ids seg failed=0
	serve corrupt-fill "$base" 0
	ids="$(bin/chaos create -target "$SERVER_URL" -n 2)"
	bin/chaos load -target "$SERVER_URL" -campaign-ids "$ids" -ledger "$DIR/ledger" -prefix snap \
		-workers "$WORKERS" -duration 1500ms >>"$DIR/helpers.txt" 2>&1
	halt TERM # writes the snapshot
	serve corrupt-fill-log "$base" 0
	bin/chaos load -target "$SERVER_URL" -campaign-ids "$ids" -ledger "$DIR/ledger" -prefix log \
		-workers "$WORKERS" -duration 1500ms >>"$DIR/helpers.txt" 2>&1
	halt KILL # leaves the log
	seg="$(find "$base" -name 'wal-*.log' -size +1k | sort | tail -n1)"
	if [ ! -s "$base/snapshot" ] || [ -z "$seg" ]; then
		echo "expected a snapshot and a log with records in $base" >&2
		ls -l "$base" >&2
		return 1
	fi
	seg="$(basename "$seg")"

	# The control, which is also the first server for the lock case.
	cp -a "$base" "$DIR/control"
	serve control "$DIR/control" 0
	refuses "second server on the directory" "$DIR/control" "$DIR/control" || failed=1
	verify_row "corrupt: undamaged copy (control)" - "$DIR/ledger" || failed=1
	halt TERM

	cp -a "$base" "$DIR/snapshot-flip"
	flip "$DIR/snapshot-flip/snapshot" $(($(stat -c %s "$base/snapshot") / 2))
	refuses "byte flipped in the snapshot" "$DIR/snapshot-flip" "$DIR/snapshot-flip/snapshot" || failed=1

	cp -a "$base" "$DIR/log-flip"
	flip "$DIR/log-flip/$seg" $(($(stat -c %s "$base/$seg") / 2))
	refuses "byte flipped mid-log" "$DIR/log-flip" "$DIR/log-flip/$seg" || failed=1

	cp -a "$base" "$DIR/log-garbage"
	printf 'garbage!%.0s' $(seq 1 8) >>"$DIR/log-garbage/$seg"
	refuses "garbage appended to the log" "$DIR/log-garbage" "$DIR/log-garbage/$seg" || failed=1
	return "$failed"
}

# scenario_dup: concurrent identical requests on a server with DATA_DIR.
scenario_dup() {
	local rc=0 s
	serve dup "$DIR/data" 0
	bin/chaos dup -target "$SERVER_URL" -keys "$DUP_KEYS" -copies "$DUP_COPIES" >"$DIR/dup.txt" 2>&1 || rc=$?
	halt TERM
	s="$(grep '^summary ' "$DIR/dup.txt" || true)"
	local requests counted
	requests="$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$s")"
	counted="$(sed -n 's/.* counted=\([0-9]*\).*/\1/p' <<<"$s")"
	if [ "$rc" != 0 ]; then
		cat "$DIR/dup.txt" >&2
		row dup "$DUP_KEYS x $DUP_COPIES" "${requests:--}" "${counted:--}" - - "FAIL: $(tail -n1 "$DIR/dup.txt")"
		return 1
	fi
	row dup "$DUP_KEYS x $DUP_COPIES" "$requests" "$counted" 0 0 "ok: one counted per key"
}

# scenario_slow: slow clients against the default timeouts.
scenario_slow() {
	local rc=0
	serve slow "" 0
	bin/chaos slow -target "$SERVER_URL" >"$DIR/slow.txt" 2>&1 || rc=$?
	halt TERM
	sed 's/^/  /' "$DIR/slow.txt"
	if [ "$rc" != 0 ]; then
		row slow - - - - - "FAIL: $(tail -n1 "$DIR/slow.txt")"
		return 1
	fi
	row slow - - - - - "ok: header cut at $(sed -n 's/^slow header: cut off after \([0-9.]*s\).*/\1/p' "$DIR/slow.txt"), body at $(sed -n 's/^slow body: cut off after \([0-9.]*s\).*/\1/p' "$DIR/slow.txt")"
}

# scenario_idle: latency with many idle connections open.
scenario_idle() {
	local rc=0 limit
	# The server and the helper each hold one descriptor per connection:
	# raise the soft limit to the hard one, and stay below it.
	ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
	limit="$(ulimit -n)"
	if [ "$limit" != unlimited ] && [ "$IDLE_CONNS" -gt $((limit - 200)) ]; then
		IDLE_CONNS=$((limit - 200))
		echo "  open files are limited to $limit: holding $IDLE_CONNS idle connections"
	fi
	serve idle "" 0
	bin/chaos idle -target "$SERVER_URL" -conns "$IDLE_CONNS" >"$DIR/idle.txt" 2>&1 || rc=$?
	halt TERM
	sed 's/^/  /' "$DIR/idle.txt"
	if [ "$rc" != 0 ]; then
		row idle - - - - - "FAIL: $(tail -n1 "$DIR/idle.txt")"
		return 1
	fi
	row idle - - - - - "ok: p50 $(sed -n 's/.*without them: p50 \([^,]*\),.*/\1/p' "$DIR/idle.txt") -> $(sed -n 's/.*with them: *p50 \([^,]*\),.*/\1/p' "$DIR/idle.txt") with $IDLE_CONNS idle"
}

for s in $SCENARIOS; do
	if ! declare -F "scenario_$s" >/dev/null; then
		echo "unknown scenario $s; the scenarios are: kill9 kill9-fast sigterm sigterm-1ms replay campaigns corrupt dup slow idle" >&2
		exit 2
	fi
done

go build -o bin/local ./local
go build -o bin/chaos ./loadtest/chaos
echo "make chaos: $(date -u +%Y-%m-%dT%H:%M:%SZ), nproc $(nproc), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "files: $ROOT"
failed=()
for s in $SCENARIOS; do
	echo "== $s"
	DIR="$ROOT/$s"
	mkdir -p "$DIR"
	# Each scenario runs in a subshell, so that set -e stops it at its
	# first failure and its own trap stops what it started; the next
	# scenario still runs.
	set +e
	(
		set -e
		HELPER_PIDS=() SERVER_PIDS=()
		trap cleanup EXIT
		trap 'exit 130' INT TERM
		"scenario_$s"
	)
	rc=$?
	set -e
	[ "$rc" = 130 ] && exit 130
	if [ "$rc" != 0 ]; then
		failed+=("$s")
		grep -q "^$s[|:]" "$ROWS" || row "$s" - - - - - "FAIL: stopped early, see $DIR"
	else
		rm -rf "$DIR"/data "$DIR"/base "$DIR"/control "$DIR"/*-flip "$DIR"/log-garbage
	fi
done

echo
echo "Summary (lost: acknowledged, then missing after the restarts; double: counted twice)"
awk -F'|' 'BEGIN { printf "%-40s %-20s %9s %13s %5s %7s  %s\n", "scenario", "cycles", "requests", "keys acked", "lost", "double", "result" }
	{ printf "%-40s %-20s %9s %13s %5s %7s  %s\n", $1, $2, $3, $4, $5, $6, $7 }' "$ROWS" | tee "$ROOT/summary.txt"
if [ "${#failed[@]}" -gt 0 ]; then
	echo "make chaos: FAILED: ${failed[*]} (files in $ROOT)" >&2
	exit 1
fi
echo "make chaos: every scenario held (files in $ROOT)"
