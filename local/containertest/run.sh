#!/usr/bin/env bash
# make container-test: the container image and compose.yaml, tested with a
# real Docker engine that this script starts for itself and removes again.
#
# The engine is private: its own --data-root, --exec-root and socket under
# one new directory, no default bridge and no iptables rules, so that it
# leaves the host's network setup, and a Docker the host may run, as they
# were. The script builds the image into it with `make image`, runs the
# tests in local/containertest against it, and on any exit, failed or not,
# removes every container, volume, network and image the tests made, stops
# the engine by its process id, and deletes its directory and the network
# links of its networks. It exits non-zero if the tests fail or if they
# left anything behind.
#
# dockerd attaches to a containerd already running at
# /run/containerd/containerd.sock (a host with Debian's containerd service
# up) rather than start its own; the containers' shims then live outside
# the engine's directory, and only the API calls below remove them.
set -euo pipefail

# dockerd runs as root.
if [ "$(id -u)" != 0 ]; then
	exec sudo --preserve-env=GO,MAKE,DOCKER,COMPOSE,IMAGE_TAG,CONTAINER_TEST_ARGS,PATH,GOTOOLCHAIN "$(realpath "$0")" "$@"
fi
cd "$(dirname "$0")/../.."

GO="${GO:-go}"
MAKE="${MAKE:-make}"
# The engine's own client (Debian's docker.io), not a newer one earlier
# in PATH that may insist on BuildKit.
DOCKER="${DOCKER:-/usr/bin/docker}"
COMPOSE="${COMPOSE:-docker-compose}"
IMAGE_TAG="${IMAGE_TAG:-container-test}"
# More go test flags, such as "-count=5 -cpu 1,2" to run the tests over
# and over against one engine.
CONTAINER_TEST_ARGS="${CONTAINER_TEST_ARGS:-}"
for tool in dockerd "$DOCKER" "${COMPOSE%% *}"; do
	command -v "$tool" >/dev/null || { echo "container-test: $tool is missing (make docker-engine installs it)"; exit 1; }
done
revision="$(git rev-parse HEAD)"

# Short: the engine's sockets live under it, and a socket's path may not
# exceed 107 bytes.
dir="$(mktemp -d /tmp/ic-engine.XXXXXX)"
engine_pid=""
tests_pid=""
# The containers' shims put their sockets in /run/containerd/s whatever
# the engine's directories; it goes too if this run made it.
had_run_containerd=false
[ -e /run/containerd ] && had_run_containerd=true
export DOCKER_HOST="unix://$dir/docker.sock"

left_behind() {
	local what
	what="$("$DOCKER" ps -aq; "$DOCKER" volume ls -q; "$DOCKER" network ls -q --filter type=custom)"
	[ -n "$what" ] && { echo "container-test: the tests left behind:"; "$DOCKER" ps -a; "$DOCKER" volume ls; "$DOCKER" network ls --filter type=custom; }
	[ -z "$what" ]
}

cleanup() {
	local rc=$?
	set +e
	# The go command and the test binary it runs, as one process group.
	[ -n "$tests_pid" ] && kill -TERM -- "-$tests_pid" 2>/dev/null && wait "$tests_pid" 2>/dev/null
	local bridges=""
	if [ -n "$engine_pid" ] && kill -0 "$engine_pid" 2>/dev/null; then
		if [ "$rc" = 0 ] && ! left_behind; then rc=1; fi
		"$DOCKER" ps -aq | xargs -r "$DOCKER" rm -f >/dev/null
		"$DOCKER" volume ls -q | xargs -r "$DOCKER" volume rm -f >/dev/null
		# A user-defined network is the link br-<first 12 of its id>.
		bridges="$("$DOCKER" network ls -q --no-trunc --filter type=custom | cut -c1-12 | sed 's/^/br-/')"
		"$DOCKER" network ls -q --filter type=custom | xargs -r "$DOCKER" network rm >/dev/null
		"$DOCKER" images -q | sort -u | xargs -r "$DOCKER" rmi -f >/dev/null
		kill -TERM "$engine_pid"
		for _ in $(seq 1 60); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$engine_pid" 2>/dev/null
		wait "$engine_pid" 2>/dev/null
	fi
	if [ "$rc" != 0 ] && [ -f "$dir/dockerd.log" ]; then
		echo "container-test: the engine's last log lines:"
		tail -n 30 "$dir/dockerd.log"
	fi
	# What a killed engine could leave: its containerd and shims, mounts.
	pkill -KILL -f -- "$dir/" 2>/dev/null
	grep -F " $dir/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$dir"
	for link in $bridges; do
		ip link show "$link" >/dev/null 2>&1 && ip link delete "$link"
	done
	if ! $had_run_containerd; then rmdir /run/containerd/s /run/containerd 2>/dev/null; fi
	if pgrep -f -- "$dir/" >/dev/null; then echo "container-test: engine processes outlived it"; rc=1; fi
	echo "container-test: engine stopped and removed ($dir)"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# In a session of its own, so that a Ctrl-C reaches the tests and this
# script, and the engine stays up for the cleanup to empty it.
setsid dockerd --data-root "$dir/root" --exec-root "$dir/exec" --host "unix://$dir/docker.sock" \
	--pidfile "$dir/dockerd.pid" --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
	>"$dir/dockerd.log" 2>&1 &
engine_pid=$!
for _ in $(seq 1 120); do
	"$DOCKER" version >/dev/null 2>&1 && break
	kill -0 "$engine_pid" 2>/dev/null || break
	sleep 0.5
done
"$DOCKER" version --format 'container-test: engine {{.Server.Version}} at '"$DOCKER_HOST" ||
	{ echo "container-test: the engine did not start"; exit 1; }

"$MAKE" --no-print-directory image DOCKER="$DOCKER" IMAGE_TAG="$IMAGE_TAG"
# In the background and a process group of their own, so that a TERM to
# this script runs the cleanup at once, which stops them first.
IMAGE="impression-counter:$IMAGE_TAG" REVISION="$revision" DOCKER="$DOCKER" COMPOSE="$COMPOSE" GO="$GO" \
	setsid "$GO" test -tags container -count=1 -v -timeout 60m $CONTAINER_TEST_ARGS ./local/containertest &
tests_pid=$!
wait "$tests_pid"
