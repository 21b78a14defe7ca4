#!/usr/bin/env bash
# CI server benchmarks (bench/RESULTS.md `## CI server`). Not run by the test suite.
#
#   source /tmp/skiff-env.sh-like env (DOCKER_HOST, SKIFF_TEST_DATABASE_URL); then
#   bench/server/run.sh                      (builds target/release/skiff and the claim bench)
#   SKIFF_BIN=path/to/skiff bench/server/run.sh      (skip the skiff build)
#
# 1. rss:     VmRSS of `skiff server` (registry, in-process runner, SQLite) after start and
#             after activity (the webhook builds of part 2, or SKIFF_BENCH_BUILDS of them when
#             part 2 is skipped, and a 1 MiB blob pushed to its registry); the same for the
#             peer that can be built here (Gitea with Actions, bench/server/build-peers.sh),
#             idle and after a few API requests. Drone and Woodpecker cannot be built here
#             (the Go module proxy refuses them): build-peers.sh says so.
# 2. latency: webhook -> first step started. A local git repository whose .drone.yml has one
#             docker pipeline whose first step prints the wall clock in microseconds (busybox
#             `adjtimex`: busybox `date` has no %N; container and host share the clock); per
#             run a new commit and a signed Gitea push webhook; latency = that timestamp - the
#             time just before curl sent the webhook. N runs after 2 warm-ups; p50/p90, and
#             where the time goes (server log, `docker events`).
# 3. claims:  crates/store/examples/claim_bench.rs: 1,000 queued stages claimed by K concurrent
#             claimers on SQLite and PostgreSQL (no peer: Drone keeps its queue in memory).
#
# Skip parts with SKIP_RSS=1, SKIP_LATENCY=1, SKIP_CLAIMS=1, SKIP_PEERS=1. Knobs: RUNS (20),
# CLAIMERS (1,4,16), STAGES (1000), IMAGE (skiff-test/busybox:1).
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in jq curl openssl git; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
export NO_COLOR=1
RUNS=${RUNS:-20}
CLAIMERS=${CLAIMERS:-1,4,16}
STAGES=${STAGES:-1000}
IMAGE=${IMAGE:-skiff-test/busybox:1}
PEERS=${SKIFF_PEERS_DIR:-/var/cache/skiff-testenv/peers}
target=${CARGO_TARGET_DIR:-$PWD/target}
skip() { [ "${!1:-0}" = 1 ]; }

if [ -z "${SKIFF_BIN:-}" ] && ! { skip SKIP_RSS && skip SKIP_LATENCY; }; then
  nice cargo build --release -q -p skiff
fi
skiff=${SKIFF_BIN:-$target/release/skiff}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s%N; }
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
pct() { sort -n | awk -v p="$1" '{a[NR]=$1} END {if (NR) {i=int((NR-1)*p+0.5)+1; print a[i]}}'; }
wait_http() { for _ in $(seq 300); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

echo "date: $(date -u +%Y-%m-%dT%H:%MZ); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024/1024)}' /proc/meminfo) GiB; $(uname -r)"
echo "skiff: $skiff ($(git rev-parse --short HEAD))"
summary=()

# ---------------------------------------------------------------------------------------------
# skiff server: started for parts 1 and 2.
if ! { skip SKIP_RSS && skip SKIP_LATENCY; }; then
  docker image inspect "$IMAGE" >/dev/null
  echo "docker: $(docker version --format '{{.Server.Version}}') at ${DOCKER_HOST:-default}; image $IMAGE"
  port=39301
  base=http://127.0.0.1:$port
  password=bench-$$-$RANDOM
  auth=(-u "admin:$password")
  SKIFF_ADMIN_PASSWORD=$password RUST_LOG=info \
    "$skiff" server --addr 127.0.0.1:$port --data-dir "$work/skiff" 2> "$work/skiff.log" &
  skiff_pid=$!
  pids+=("$skiff_pid")
  wait_http "$base/healthz"
  sleep 2
  skiff_idle=$(rss "$skiff_pid")

  # The repository the webhooks are for.
  src=$work/src
  git init -q -b main "$src"
  git -C "$src" config user.email bench@example.com
  git -C "$src" config user.name bench
  cat > "$src/.drone.yml" <<YML
kind: pipeline
type: docker
name: bench
steps:
- name: stamp
  image: $IMAGE
  pull: never
  commands: ["adjtimex | grep tv_"]
YML
  git -C "$src" add .drone.yml
  git -C "$src" commit -q -m "pipeline"
  secret=bench-hook-secret
  curl -sf "${auth[@]}" -H 'Content-Type: application/json' -X POST "$base/api/v1/repos" \
    -d "{\"slug\":\"bench/app\",\"git_url\":\"$src\",\"webhook_secret\":\"$secret\"}" >/dev/null

  # One webhook run: new commit, signed push, wait for the build; prints
  # "t0 t_hook_answered build_number".
  hook() {
    local i=$1 before sha body sig t0 t1 answer number
    before=$(git -C "$src" rev-parse HEAD)
    git -C "$src" commit -q --allow-empty -m "run $i"
    sha=$(git -C "$src" rev-parse HEAD)
    body=$(printf '{"ref":"refs/heads/main","before":"%s","after":"%s","head_commit":{"id":"%s","message":"run %s","author":{"name":"bench","email":"bench@example.com","username":"bench"}},"repository":{"full_name":"bench/app","clone_url":"%s"}}' \
      "$before" "$sha" "$sha" "$i" "$src")
    sig=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)
    t0=$(now)
    answer=$(curl -sf -X POST "$base/hook/gitea" -H 'Content-Type: application/json' \
      -H 'X-Gitea-Event: push' -H "X-Gitea-Delivery: bench-$$-$i" -H "X-Gitea-Signature: $sig" \
      --data-binary "$body")
    t1=$(now)
    number=$(printf '%s' "$answer" | jq -r '.build.number // empty')
    [ -n "$number" ] || { echo "webhook $i made no build: $answer" >&2; return 1; }
    sleep 0.3
    local state
    for _ in $(seq 600); do
      state=$(curl -sf "${auth[@]}" "$base/api/v1/repos/bench/app/builds/$number" | jq -r .status)
      case "$state" in success|failure|error|killed) break ;; esac
      sleep 0.1
    done
    [ "$state" = success ] || { echo "build $number ended $state" >&2; return 1; }
    echo "$t0 $t1 $number"
  }
  # The first-step timestamp of a build.
  stamp() {
    curl -sf "${auth[@]}" "$base/api/v1/repos/bench/app/builds/$1/logs?stage=1&step=stamp" \
      | jq -r '.. | .out? // empty' \
      | awk '$1 == "time.tv_sec:" {s=$2} $1 == "time.tv_usec:" {u=$2} END {if (s) printf "%d%06d000\n", s, u}'
  }
  # Nanoseconds of the first server log line after $1 that contains $2 (the log's RFC 3339 times).
  log_time() {
    local t
    while IFS= read -r line; do
      t=$(date -d "${line%% *}" +%s%N)
      if [ "$t" -ge "$1" ]; then echo "$t"; return 0; fi
    done < <(grep -F "$2" "$work/skiff.log")
    echo 0
  }
fi

# ---------------------------------------------------------------------------------------------
# 2. Webhook -> first step started.
builds_done=0
if ! skip SKIP_LATENCY || ! skip SKIP_RSS; then
  runs=$RUNS
  skip SKIP_LATENCY && runs=${SKIFF_BENCH_BUILDS:-3}
  hook warm1 >/dev/null
  hook warm2 >/dev/null
  docker events --since "$(date +%s)" --filter type=container --filter type=network \
    --format '{{.TimeNano}} {{.Type}} {{.Action}} {{.Actor.Attributes.name}}' > "$work/events" 2>/dev/null &
  events_pid=$!
  pids+=("$events_pid")
  sleep 0.5
  : > "$work/runs"
  for i in $(seq "$runs"); do
    out=$(hook "$i")
    read -r t0 t1 number <<<"$out"
    s=$(stamp "$number")
    [ -n "$s" ] || { echo "build $number: no timestamp in the first step's log" >&2; exit 1; }
    echo "$t0 $t1 $number $s" >> "$work/runs"
    echo "run $i: build $number, webhook->first step $(( (s - t0) / 1000000 )) ms (webhook answered after $(( (t1 - t0) / 1000000 )) ms)" >&2
  done
  builds_done=$((runs + 2))
  sleep 1
  kill "$events_pid" 2>/dev/null || true
  # Where the time goes, per run: t0 -> webhook answered -> stage claimed (server log) ->
  # build network created -> first container created (docker events) -> first command ran
  # (the step's timestamp). Docker's `start` event comes after the process is already running.
  : > "$work/phases"
  ms() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", (a - b) / 1e6}'; }
  while read -r t0 t1 number s; do
    claimed=$(log_time "$t0" "stage claimed")
    network=$(awk -v t="$t0" '$1 >= t && $2 == "network" && $3 == "create" {print $1; exit}' "$work/events")
    create=$(awk -v t="$t0" '$1 >= t && $2 == "container" && $3 == "create" {print $1; exit}' "$work/events")
    echo "$(ms "$t1" "$t0") $(ms "$claimed" "$t1") $(ms "${network:-0}" "$claimed") $(ms "${create:-0}" "${network:-0}") $(ms "$s" "${create:-0}") $(ms "$s" "$t0")" >> "$work/phases"
  done < "$work/runs"
  col() { awk -v c="$1" '{print $c}' "$work/phases"; }
  if ! skip SKIP_LATENCY; then
    p50=$(col 6 | median); p90=$(col 6 | pct 0.9)
    echo "latency: $runs runs; webhook -> first step started: p50 ${p50} ms, p90 ${p90} ms, min $(col 6 | sort -n | head -1) ms, max $(col 6 | sort -n | tail -1) ms (target p50 <= 100 ms)"
    echo "latency phases, median ms: webhook answered (mirror fetch, plan, insert) $(col 1 | median); -> stage claimed (wake-up, claim, job) $(col 2 | median); -> network created (checkout, re-plan, image check) $(col 3 | median); -> first container created $(col 4 | median); -> first command ran (container start) $(col 5 | median)"
    summary+=("latency p50 ${p50} ms, p90 ${p90} ms (target p50 <= 100 ms)")
  fi
fi

# ---------------------------------------------------------------------------------------------
# 1. RSS after activity (builds above and a registry push), then the peer.
if ! skip SKIP_RSS; then
  sleep 1
  skiff_builds=$(rss "$skiff_pid")
  echo "rss: after the builds, /proc/$skiff_pid/smaps_rollup: $(awk '/^(Rss|Anonymous|Shared_Clean|Private_Clean):/ {printf "%s %d MB; ", $1, $2/1024}' "/proc/$skiff_pid/smaps_rollup"), threads $(awk '/^Threads/ {print $2}' "/proc/$skiff_pid/status")"
  token=$(curl -sf "${auth[@]}" "$base/auth/token?service=skiff-registry&scope=repository:bench/blob:push,pull" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p')
  head -c 1048576 /dev/urandom > "$work/blob"
  digest=sha256:$(sha256sum "$work/blob" | cut -d' ' -f1)
  location=$(curl -sf -D - -o /dev/null -H "Authorization: Bearer $token" -X POST "$base/v2/bench/blob/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
  case "$location" in http*) ;; *) location="$base$location" ;; esac
  sep='?'; case "$location" in *\?*) sep='&' ;; esac
  curl -sf -o /dev/null -H "Authorization: Bearer $token" -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary @"$work/blob" "$location${sep}digest=$digest"
  curl -sf -o /dev/null -H "Authorization: Bearer $token" "$base/v2/bench/blob/blobs/$digest"
  sleep 2
  skiff_after=$(rss "$skiff_pid"); skiff_peak=$(hwm "$skiff_pid")
  echo "rss: skiff server idle ${skiff_idle} MB; after ${builds_done} builds ${skiff_builds} MB; and after a 1 MiB registry push ${skiff_after} MB (peak ${skiff_peak} MB) (target <= 30 MB)"
  summary+=("skiff RSS idle ${skiff_idle} MB, after activity ${skiff_after} MB")
fi
if ! { skip SKIP_RSS && skip SKIP_LATENCY; }; then
  kill "$skiff_pid"; wait "$skiff_pid" 2>/dev/null || true
fi

if ! skip SKIP_RSS && ! skip SKIP_PEERS; then
  if [ -x "$PEERS/gitea" ] && [ -d "$PEERS/gitea-src" ]; then
    g=$work/gitea
    mkdir -p "$g/custom/conf"
    gport=39302
    cat > "$g/custom/conf/app.ini" <<INI
APP_NAME = bench
RUN_MODE = prod
WORK_PATH = $g
[server]
HTTP_ADDR = 127.0.0.1
HTTP_PORT = $gport
ROOT_URL = http://127.0.0.1:$gport/
DISABLE_SSH = true
OFFLINE_MODE = true
STATIC_ROOT_PATH = $PEERS/gitea-src
APP_DATA_PATH = $g/data
LFS_START_SERVER = false
[database]
DB_TYPE = sqlite3
PATH = $g/data/gitea.db
[repository]
ROOT = $g/repos
[security]
INSTALL_LOCK = true
SECRET_KEY = bench-secret-key-not-secret
INTERNAL_TOKEN = $("$PEERS/gitea" generate secret INTERNAL_TOKEN)
[oauth2]
JWT_SECRET = $("$PEERS/gitea" generate secret JWT_SECRET)
[actions]
ENABLED = true
[service]
DISABLE_REGISTRATION = true
[mailer]
ENABLED = false
[log]
LEVEL = Warn
MODE = console
INI
    # Gitea refuses to run as root unless told; these benchmarks run as root in the sandbox.
    export GITEA_WORK_DIR=$g GITEA_CUSTOM=$g/custom GITEA_I_AM_BEING_UNSAFE_RUNNING_AS_ROOT=true
    "$PEERS/gitea" --config "$g/custom/conf/app.ini" migrate > "$work/gitea.log" 2>&1
    "$PEERS/gitea" --config "$g/custom/conf/app.ini" admin user create --admin --username bench \
      --password "$password" --email bench@example.com --must-change-password=false >> "$work/gitea.log" 2>&1
    "$PEERS/gitea" --config "$g/custom/conf/app.ini" web >> "$work/gitea.log" 2>&1 &
    gitea_pid=$!
    pids+=("$gitea_pid")
    wait_http "http://127.0.0.1:$gport/api/v1/version"
    sleep 2
    gitea_idle=$(rss "$gitea_pid")
    # Activity: a repository with Actions, a file committed through the API, some reads.
    gapi=http://127.0.0.1:$gport/api/v1
    curl -sf -u "bench:$password" -H 'Content-Type: application/json' -X POST "$gapi/user/repos" \
      -d '{"name":"app","auto_init":true,"default_branch":"main"}' >/dev/null
    curl -sf -u "bench:$password" -H 'Content-Type: application/json' -X POST "$gapi/repos/bench/app/contents/.gitea/workflows/ci.yml" \
      -d "{\"content\":\"$(printf 'on: push\njobs:\n  stamp:\n    runs-on: ubuntu-latest\n    steps:\n      - run: date\n' | base64 -w0)\",\"message\":\"ci\"}" >/dev/null
    for _ in $(seq 20); do
      curl -sf -o /dev/null -u "bench:$password" "$gapi/repos/bench/app/actions/runs"
      curl -sf -o /dev/null -u "bench:$password" "$gapi/repos/bench/app/commits"
    done
    sleep 2
    gitea_after=$(rss "$gitea_pid"); gitea_peak=$(hwm "$gitea_pid")
    kill "$gitea_pid"; wait "$gitea_pid" 2>/dev/null || true
    echo "rss: gitea $("$PEERS/gitea" --version | awk '{print $3}') (Actions on, SQLite, no runner attached, front end not built) idle ${gitea_idle} MB; after a repository, a workflow commit and 40 API reads ${gitea_after} MB (peak ${gitea_peak} MB)"
    if [ -n "${skiff_idle:-}" ]; then
      ratio=$(awk -v a="$skiff_idle" -v b="$gitea_idle" 'BEGIN {printf "%.2f", a/b}')
      echo "rss ratio idle skiff/gitea: $ratio"
      summary+=("idle RSS skiff/gitea ${ratio}")
    fi
  else
    echo "rss: no peer binary in $PEERS (run bench/server/build-peers.sh); Drone and Woodpecker cannot be built here"
  fi
fi

# ---------------------------------------------------------------------------------------------
# 3. Claims per second.
if ! skip SKIP_CLAIMS; then
  backends=sqlite
  if [ -n "${SKIFF_TEST_DATABASE_URL:-}" ]; then backends=sqlite,postgres
  else echo "claims: SKIFF_TEST_DATABASE_URL is not set; SQLite only"; fi
  nice cargo build --release -q -p skiff-store --example claim_bench
  "$target/release/examples/claim_bench" --stages "$STAGES" --claimers "$CLAIMERS" --backends "$backends" | tee "$work/claims"
  awk '{for (i=2; i<=NF; i++) {split($i, kv, "="); v[kv[1]]=kv[2]} printf "claims: %s, %s claimers: %s claims/s\n", v["backend"], v["claimers"], v["claims_per_s"]}' "$work/claims"
fi

echo "summary: $(IFS=';'; echo "${summary[*]:-}")"
