#!/usr/bin/env bash
# Pipeline overhead benchmark (bench/RESULTS.md `## Pipelines`). Not run by tests.
#
#   bench/exec/run.sh [ROUNDS]        (default 5 rounds; needs DOCKER_HOST and skiff-test/busybox:1)
#   SKIFF_BIN=target/debug/skiff bench/exec/run.sh 3     (skip the release build)
#
# docker: a 20-step pipeline of trivial steps (`true`) run by `skiff exec`, against the floor:
#         20 sequential `docker run --rm` of the same image, measured in the same run, rounds
#         interleaved; reports the medians and their ratio (target <= 1.2).
# exec:   the same 20 steps as a `type: exec` pipeline, against 20 sequential `sh -c true`;
#         reports the overhead per step (target <= 5 ms).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-5}
image=skiff-test/busybox:1
steps=20

# SKIFF_BIN: use this binary instead of building target/release/skiff.
if [ -z "${SKIFF_BIN:-}" ]; then
  cargo build --release -p skiff >/dev/null 2>&1 || cargo build --release -p skiff
fi
skiff=${SKIFF_BIN:-$PWD/target/release/skiff}
docker image inspect "$image" >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/docker" "$work/exec"
{
  printf 'kind: pipeline\ntype: docker\nname: bench\nsteps:\n'
  for i in $(seq $steps); do
    printf -- '- name: s%d\n  image: %s\n  pull: never\n  commands: ["true"]\n' "$i" "$image"
  done
} > "$work/docker/.drone.yml"
{
  printf 'kind: pipeline\ntype: exec\nname: bench\nsteps:\n'
  for i in $(seq $steps); do
    printf -- '- name: s%d\n  commands: ["true"]\n' "$i"
  done
} > "$work/exec/.drone.yml"

now() { date +%s%N; }
# Milliseconds taken by a command.
time_ms() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now); echo $(( (t1 - t0) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

floor_docker() { for _ in $(seq $steps); do docker run --rm "$image" true; done; }
skiff_docker() { (cd "$work/docker" && NO_COLOR=1 "$skiff" exec); }
# For context: the same runs on a user-defined network, as every skiff step is (the engine here
# runs with --bridge=none, so plain `docker run` gets no network at all).
floor_docker_net() { for _ in $(seq $steps); do docker run --rm --network "$net" "$image" true; done; }
floor_exec() { for _ in $(seq $steps); do sh -c true; done; }
skiff_exec() { (cd "$work/exec" && NO_COLOR=1 "$skiff" exec); }

net=skiff-bench-$$
docker network create "$net" >/dev/null
trap 'rm -rf "$work"; docker network rm "$net" >/dev/null 2>&1 || true' EXIT

# Warm up both paths once (page cache, engine state).
skiff_docker >/dev/null 2>&1; floor_docker >/dev/null 2>&1

fd=(); fn=(); sd=(); fe=(); se=(); ratios=()
for r in $(seq "$rounds"); do
  fd+=("$(time_ms floor_docker)"); sd+=("$(time_ms skiff_docker)"); fn+=("$(time_ms floor_docker_net)")
  fe+=("$(time_ms floor_exec)"); se+=("$(time_ms skiff_exec)")
  ratios+=("$(awk -v a="${sd[-1]}" -v b="${fd[-1]}" 'BEGIN{printf "%.3f", a/b}')")
  echo "round $r: docker floor ${fd[-1]} ms, skiff ${sd[-1]} ms (ratio ${ratios[-1]}), floor on a network ${fn[-1]} ms; exec floor ${fe[-1]} ms, skiff ${se[-1]} ms" >&2
done
mfd=$(printf '%s\n' "${fd[@]}" | median); msd=$(printf '%s\n' "${sd[@]}" | median)
mfn=$(printf '%s\n' "${fn[@]}" | median); mr=$(printf '%s\n' "${ratios[@]}" | median)
mfe=$(printf '%s\n' "${fe[@]}" | median); mse=$(printf '%s\n' "${se[@]}" | median)

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); rounds: $rounds; steps: $steps; docker: $(docker version --format '{{.Server.Version}}')"
echo "docker: floor (20 x docker run --rm) median ${mfd} ms; skiff exec median ${msd} ms; ratio of medians $(awk -v a="$msd" -v b="$mfd" 'BEGIN{printf "%.2f", a/b}'); median of per-round ratios ${mr}"
echo "docker: for context, 20 x docker run --rm --network <user-defined> median ${mfn} ms; skiff / that $(awk -v a="$msd" -v b="$mfn" 'BEGIN{printf "%.2f", a/b}')"
echo "exec:   floor (20 x sh -c true) median ${mfe} ms; skiff exec median ${mse} ms; overhead per step $(awk -v a="$mse" -v b="$mfe" -v n=$steps 'BEGIN{printf "%.2f", (a-b)/n}') ms"
