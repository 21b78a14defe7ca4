#!/usr/bin/env bash
# Registry benchmark: skiff vs Debian's docker-registry (CNCF Distribution 2.8) on this machine,
# in one run. Not run by the test suite.
#   bench/registry/run.sh            (builds target/release/skiff first)
#   ROUNDS=5 SIZE_MIB=512 WRK_SECONDS=10 bench/registry/run.sh
# Measures, with both registries running side by side (each idle while the other works):
# - push: ROUNDS monolithic pushes (POST + one streamed PUT ?digest=, `curl -T`), each of a new
#   random SIZE_MIB blob, to both registries in turn (the order alternates per round so neither
#   always goes first; `sync` before each, so no push pays for the previous one's writeback);
#   the median time of each, and per push the server's user and system CPU;
#   One warm-up push and pull to each registry first, not counted;
# - pull: a GET of each blob right after its push; the median;
# - manifest GET: req/s with `wrk -t2 -c32`, each registry alone;
# - RSS from /proc: idle before any request, after the pushes, after everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${SIZE_MIB:-512}
ROUNDS=${ROUNDS:-5}
WRK_SECONDS=${WRK_SECONDS:-10}
# As root, the tools are installed when missing (Debian packages, as scripts/test does).
if [ "$(id -u)" = 0 ]; then
  . scripts/lib.sh
  need_packages wrk docker-registry curl
fi
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "docker-registry is not installed" >&2; exit 1; }
# The `skiff` binary (`skiff registry serve`, jemalloc as in production). SKIFF_BENCH_BARE=1
# measures the registry crate's bare server instead (examples/serve.rs: the same
# skiff_registry::serve with the system allocator), which builds much faster.
if [ "${SKIFF_BENCH_BARE:-0}" != 1 ]; then
  nice cargo build --release -q -p skiff
  serve_skiff() { exec "$PWD/target/release/skiff" registry serve --addr "$1" --data-dir "$2"; }
  server_kind="target/release/skiff registry serve"
else
  nice cargo build --release -q -p skiff-registry --example serve
  serve_skiff() { exec "$PWD/target/release/examples/serve" "$1" "$2"; }
  server_kind="target/release/examples/serve (skiff_registry::serve)"
fi

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

for i in $(seq 0 "$ROUNDS"); do # blob0 is the warm-up's
  head -c "$((SIZE_MIB << 20))" /dev/urandom > "$work/blob$i"
  echo "sha256:$(sha256sum "$work/blob$i" | cut -d' ' -f1)" > "$work/digest$i"
  cat "$work/blob$i" > /dev/null # page cache
done
head -c 65536 /dev/urandom > "$work/layer" # the manifest benchmark's layer
sync

rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }
# cpu PID: the process's user and system CPU so far, in clock ticks.
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
wait_up() { for _ in $(seq 100); do curl -sf -o /dev/null "http://$1/v2/" && return 0; sleep 0.1; done; return 1; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# upload_url ADDR: a new upload session's absolute URL, with the separator for more query.
upload_url() {
  local location
  location=$(curl -sf -D - -o /dev/null -X POST "http://$1/v2/bench/blob/blobs/uploads/" |
    awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
  case "$location" in http*) ;; *) location="http://$1$location" ;; esac
  case "$location" in *\?*) echo "$location&" ;; *) echo "$location?" ;; esac
}
push() { # ADDR I: prints seconds
  local url; url=$(upload_url "$1")
  curl -sf -o /dev/null -w '%{time_total}\n' -X PUT -H 'Content-Type: application/octet-stream' \
    -T "$work/blob$2" "${url}digest=$(cat "$work/digest$2")"
}
pull() { curl -sf -o /dev/null -w '%{time_total}\n' "http://$1/v2/bench/blob/blobs/$(cat "$work/digest$2")"; }
manifest_rps() { # ADDR: puts a manifest referencing a small config and layer, then wrk on it
  local config='{}' cdigest ldigest url
  cdigest=sha256:$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  url=$(upload_url "$1")
  curl -sf -o /dev/null -X PUT --data-binary "$config" "${url}digest=$cdigest"
  ldigest=sha256:$(sha256sum "$work/layer" | cut -d' ' -f1)
  url=$(upload_url "$1")
  curl -sf -o /dev/null -X PUT --data-binary "@$work/layer" "${url}digest=$ldigest"
  local manifest
  manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' "$cdigest" "$ldigest" "$(stat -c %s "$work/layer")")
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "$manifest" "http://$1/v2/bench/blob/manifests/v1"
  wrk -t2 -c32 -d"${WRK_SECONDS}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$1/v2/bench/blob/manifests/v1" | awk '/Requests\/sec/ {print $2}'
}

# Distribution 2.8 with filesystem storage and deletes enabled.
dist=127.0.0.1:39101 skiff=127.0.0.1:39102
mkdir -p "$work/dist"
cat > "$work/dist.yml" <<YML
version: 0.1
log: { level: error }
storage:
  filesystem: { rootdirectory: $work/dist }
  delete: { enabled: true }
http: { addr: $dist }
YML
docker-registry serve "$work/dist.yml" > "$work/dist.log" 2>&1 &
dist_pid=$!; pids+=($dist_pid)
serve_skiff "$skiff" "$work/skiff" 2> "$work/skiff.log" &
skiff_pid=$!; pids+=($skiff_pid)
wait_up "$dist"; wait_up "$skiff"; sleep 1
dist_idle=$(rss $dist_pid) skiff_idle=$(rss $skiff_pid)

addr_of() { if [ "$1" = skiff ]; then echo "$skiff"; else echo "$dist"; fi; }
# Stored blobs are removed behind the registry's back, so page cache and disk use do not grow
# round by round, and every push finds the same memory freed before it.
forget_blobs() { find "$work/$1" -type f -size +1M -delete; }

# A warm-up push and pull to each, not counted: a new process's first push also pays for
# its first-touched memory, which on this VM can cost more than the push itself.
for who in dist skiff; do
  sync
  push "$(addr_of "$who")" 0 > /dev/null
  pull "$(addr_of "$who")" 0 > /dev/null
  forget_blobs "$who"
done

: > "$work/push.dist"; : > "$work/push.skiff"; : > "$work/pull.dist"; : > "$work/pull.skiff"
for i in $(seq "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then order="dist skiff"; else order="skiff dist"; fi
  for who in $order; do
    addr=$(addr_of "$who") pid=$dist_pid
    [ "$who" = skiff ] && pid=$skiff_pid
    sync # every push starts with no dirty pages left by the one before
    read -r user0 sys0 < <(cpu "$pid")
    push "$addr" "$i" >> "$work/push.$who"
    read -r user1 sys1 < <(cpu "$pid")
    # Per push: the server's user and system CPU (ticks). On a VM whose host is busy or
    # lazily backs guest memory, slow rounds show up as inflated system time.
    echo "round $i $who $(tail -n 1 "$work/push.$who") s, server cpu user $((user1 - user0)) sys $((sys1 - sys0)) ticks" >> "$work/rounds"
    pull "$addr" "$i" >> "$work/pull.$who"
    forget_blobs "$who"
  done
done
dist_after=$(rss $dist_pid) skiff_after=$(rss $skiff_pid)
dist_rps=$(manifest_rps "$dist")
skiff_rps=$(manifest_rps "$skiff")
dist_all=$(rss $dist_pid) skiff_all=$(rss $skiff_pid)

dpush=$(median < "$work/push.dist") spush=$(median < "$work/push.skiff")
dpull=$(median < "$work/pull.dist") spull=$(median < "$work/pull.skiff")
echo "skiff server: $server_kind"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024/1024)}' /proc/meminfo) GiB, load $(cut -d' ' -f1-3 /proc/loadavg); blob ${SIZE_MIB} MiB, $ROUNDS rounds"
cat "$work/rounds"
echo "push seconds, distribution: $(tr '\n' ' ' < "$work/push.dist")"
echo "push seconds, skiff:        $(tr '\n' ' ' < "$work/push.skiff")"
echo "pull seconds, distribution: $(tr '\n' ' ' < "$work/pull.dist")"
echo "pull seconds, skiff:        $(tr '\n' ' ' < "$work/pull.skiff")"
echo "name push_median_s pull_median_s manifest_rps rss_idle_mb rss_after_push_mb rss_after_all_mb"
echo "distribution $dpush $dpull $dist_rps $dist_idle $dist_after $dist_all"
echo "skiff $spush $spull $skiff_rps $skiff_idle $skiff_after $skiff_all"
awk -v dp="$dpush" -v sp="$spush" -v dl="$dpull" -v sl="$spull" -v dr="$dist_rps" -v sr="$skiff_rps" -v size="$SIZE_MIB" 'BEGIN {
  printf "push (median): skiff %.0f MiB/s vs distribution %.0f MiB/s = %.2fx\n", size/sp, size/dp, dp/sp
  printf "pull (median): skiff %.0f MiB/s vs distribution %.0f MiB/s = %.2fx\n", size/sl, size/dl, dl/sl
  printf "manifest GET: skiff %.0f req/s vs distribution %.0f req/s = %.2fx\n", sr, dr, sr/dr
}'
echo "idle RSS: skiff ${skiff_idle} MB vs distribution ${dist_idle} MB; after pushes: skiff ${skiff_after} MB vs distribution ${dist_after} MB"
