#!/usr/bin/env bash
# Go benchmarks of this tree against a baseline revision, in paired rounds
# (make bench-compare BASELINE=<rev>). Each package's test binary is built
# once for each tree; then every round runs the baseline's benchmarks and
# this tree's back to back, so that both see the same state of a shared,
# noisy machine. benchstat compares the two sets: medians over the rounds.
#   BASELINE (required): a git revision, such as main~5
#   ROUNDS (5), BENCH ('.'), BENCHTIME (1s), CPUS (1,2)
#   PKGS ("./shared/memstore ./shared/httpapi")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
: "${BASELINE:?set BASELINE to a git revision}"
: "${BENCHSTAT:?run it as make bench-compare, which pins benchstat}"
rounds="${ROUNDS:-5}" bench="${BENCH:-.}" benchtime="${BENCHTIME:-1s}" cpus="${CPUS:-1,2}"
read -r -a pkgs <<<"${PKGS:-./shared/memstore ./shared/httpapi}"
root="out/bench-compare-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$root/bin"
base_tree="$(mktemp -d)"
trap 'git worktree remove --force "$base_tree" >/dev/null 2>&1 || true' EXIT
git worktree add --quiet --detach "$base_tree" "$BASELINE"

# Test binaries, one per package and tree, so that no round pays for a build.
for pkg in "${pkgs[@]}"; do
	name="$(basename "$pkg")"
	(cd "$base_tree" && go test -c -o "$OLDPWD/$root/bin/base-$name.test" "$pkg")
	go test -c -o "$root/bin/new-$name.test" "$pkg"
done

{
	date -u
	echo "nproc: $(nproc)"
	grep -m1 'model name' /proc/cpuinfo
	uptime
	echo "baseline: $BASELINE ($(git rev-parse --short "$BASELINE")), this tree: $(git rev-parse --short HEAD)$(git diff --quiet || echo ' with uncommitted changes')"
} | tee "$root/machine.txt"

for round in $(seq 1 "$rounds"); do
	echo "round $round of $rounds"
	for tree in base new; do
		for pkg in "${pkgs[@]}"; do
			name="$(basename "$pkg")"
			# Run from the package's directory, as go test does.
			dir="$pkg"
			[ "$tree" = base ] && dir="$base_tree/$pkg"
			(cd "$dir" && "$OLDPWD/$root/bin/$tree-$name.test" -test.run '^$' -test.bench "$bench" -test.benchmem \
				-test.benchtime "$benchtime" -test.cpu "$cpus" -test.count 1) >>"$root/$tree.txt"
		done
	done
done
go run "$BENCHSTAT" "$root/base.txt" "$root/new.txt" | tee "$root/benchstat.txt"
echo "Files: $root/{machine.txt,base.txt,new.txt,benchstat.txt}"
