#!/usr/bin/env bash
# make container-test: the container image and compose.yaml, tested with a
# real Docker engine that this script starts for itself and removes again.
#
# The engine is private: its own --data-root, --exec-root and socket under
# one new directory, no default bridge and no iptables rules, so that it
# touches nothing of a Docker the host may already run. The script builds
# the image into it with `make image`, runs the tests in local/containertest
# against it, and on any exit, failed or not, removes every container,
# volume, network and image the tests made, stops the engine by its process
# id, and deletes its directory and the network links it created. It exits
# non-zero if the tests fail or if anything was left behind.
set -euo pipefail
cd "$(dirname "$0")/../.."

# dockerd runs as root.
if [ "$(id -u)" != 0 ]; then exec sudo --preserve-env=GO,MAKE,DOCKER,COMPOSE,IMAGE_TAG,PATH,GOTOOLCHAIN "$0" "$@"; fi

GO="${GO:-go}"
MAKE="${MAKE:-make}"
# The engine's own client (Debian's docker.io), not a newer one earlier
# in PATH that may insist on BuildKit.
DOCKER="${DOCKER:-/usr/bin/docker}"
COMPOSE="${COMPOSE:-docker-compose}"
IMAGE_TAG="${IMAGE_TAG:-container-test}"
for tool in dockerd "$DOCKER" "$COMPOSE"; do
	command -v "$tool" >/dev/null || { echo "container-test: $tool is missing (make docker-engine installs it)"; exit 1; }
done

# Short: the engine's sockets live under it, and a socket's path may not
# exceed 107 bytes.
dir="$(mktemp -d /tmp/ic-engine.XXXXXX)"
links_before="$(ip -o link show | awk -F': ' '{print $2}' | sort)"
engine_pid=""
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
	if [ -n "$engine_pid" ] && kill -0 "$engine_pid" 2>/dev/null; then
		if [ "$rc" = 0 ] && ! left_behind; then rc=1; fi
		"$DOCKER" ps -aq | xargs -r "$DOCKER" rm -f >/dev/null
		"$DOCKER" volume ls -q | xargs -r "$DOCKER" volume rm -f >/dev/null
		"$DOCKER" network ls -q --filter type=custom | xargs -r "$DOCKER" network rm >/dev/null
		"$DOCKER" images -q | sort -u | xargs -r "$DOCKER" rmi -f >/dev/null
		kill -TERM "$engine_pid"
		for _ in $(seq 1 60); do kill -0 "$engine_pid" 2>/dev/null || break; sleep 0.5; done
		kill -KILL "$engine_pid" 2>/dev/null
		wait "$engine_pid" 2>/dev/null
	fi
	# What a killed engine could leave: its containerd and shims, mounts.
	pkill -KILL -f -- "$dir/" 2>/dev/null
	grep -F " $dir/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l 2>/dev/null
	rm -rf "$dir"
	comm -13 <(echo "$links_before") <(ip -o link show | awk -F': ' '{print $2}' | sort) |
		sed 's/@.*//' | xargs -r -n1 ip link delete 2>/dev/null
	if pgrep -f -- "$dir/" >/dev/null; then echo "container-test: engine processes outlived it"; rc=1; fi
	echo "container-test: engine stopped and removed ($dir)"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dockerd --data-root "$dir/root" --exec-root "$dir/exec" --host "unix://$dir/docker.sock" \
	--pidfile "$dir/dockerd.pid" --bridge=none --iptables=false --ip-forward=false --ip-masq=false \
	>"$dir/dockerd.log" 2>&1 &
engine_pid=$!
for _ in $(seq 1 120); do
	"$DOCKER" version >/dev/null 2>&1 && break
	kill -0 "$engine_pid" 2>/dev/null || break
	sleep 0.5
done
"$DOCKER" version --format 'container-test: engine {{.Server.Version}} at '"$DOCKER_HOST" ||
	{ echo "container-test: the engine did not start:"; tail -n 30 "$dir/dockerd.log"; exit 1; }

"$MAKE" --no-print-directory image DOCKER="$DOCKER" IMAGE_TAG="$IMAGE_TAG"
IMAGE="impression-counter:$IMAGE_TAG" REVISION="$(git rev-parse HEAD)" DOCKER="$DOCKER" COMPOSE="$COMPOSE" \
	"$GO" test -tags container -count=1 -v -timeout 20m ./local/containertest
