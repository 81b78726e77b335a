# Starts and stops servers for the make targets; source it, do not run it.
# Every server started here gets SIGTERM when the script exits, however it
# exits.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
mkdir -p bin out/loadtest
SERVER_PIDS=()

stop_servers() {
	local pid
	for pid in "${SERVER_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	SERVER_PIDS=()
}
trap stop_servers EXIT

# stop_server PID stops one server that start_server started and waits for
# it to exit.
stop_server() {
	local pid="$1" keep=() p
	kill -TERM "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	for p in "${SERVER_PIDS[@]}"; do
		[ "$p" = "$pid" ] || keep+=("$p")
	done
	SERVER_PIDS=("${keep[@]}")
}
trap 'exit 130' INT TERM

# build builds the local server, the floor and the harness into bin/.
build() {
	go build -o bin/local ./local
	go build -o bin/floor ./loadtest/floor
	go build -o bin/loadtest ./loadtest
}

# build_revision REV OUT builds the local server as it was at git revision
# REV into OUT, from a temporary checkout that is removed afterwards.
build_revision() {
	local rev="$1" out="$2" tmp
	tmp="$(mktemp -d)"
	git worktree add --quiet --detach "$tmp" "$rev"
	(cd "$tmp" && go build -o "$OLDPWD/$out" ./local) || { git worktree remove --force "$tmp"; exit 1; }
	git worktree remove --force "$tmp"
}

# start_server NAME BIN [VAR=VALUE...] starts BIN on a free port with the
# variables added, logging to out/loadtest/NAME.log, waits until it listens
# and sets SERVER_URL and SERVER_PID.
start_server() {
	local name="$1" bin="$2" port=""
	shift 2
	local log="out/loadtest/$name.log"
	# The log is emptied here, before the server starts, not by the
	# background process's redirection: that runs after the fork, so the
	# loop below could find no file yet (sed: can't read ...) or a previous
	# run's log with its port.
	: >"$log"
	env "$@" PORT=0 "$bin" >>"$log" 2>&1 &
	SERVER_PID=$!
	SERVER_PIDS+=("$SERVER_PID")
	for _ in $(seq 1 100); do
		port="$(sed -n 's/.*"msg":"listening","addr":"[^"]*:\([0-9]*\)".*/\1/p' "$log" | head -n1)"
		[ -n "$port" ] && break
		if ! kill -0 "$SERVER_PID" 2>/dev/null; then
			echo "$name did not start:" >&2
			cat "$log" >&2
			exit 1
		fi
		sleep 0.1
	done
	if [ -z "$port" ]; then
		echo "$name did not say where it listens within 10s; log: $log" >&2
		exit 1
	fi
	SERVER_URL="http://127.0.0.1:$port"
	echo "$name (pid $SERVER_PID) listening at $SERVER_URL, log $log"
}

# new_key prints a random admin key, for servers that require one.
new_key() {
	od -An -N16 -tx1 /dev/urandom | tr -d ' \n'
}

# stamp prints a UTC timestamp for directory names.
stamp() {
	date -u +%Y%m%dT%H%M%SZ
}
