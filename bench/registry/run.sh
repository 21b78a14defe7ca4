#!/usr/bin/env bash
# Registry benchmark: skiff vs Debian's docker-registry (CNCF Distribution 2.8) on this machine,
# one run, each registry measured alone. Not run by the test suite.
#   bench/registry/run.sh            (builds target/release/skiff first)
# Measures: monolithic push of a 512 MiB blob (POST + one streamed PUT), its pull,
# manifest GET req/s with `wrk -t2 -c32 -d10s`, RSS idle and after the pushes.
set -euo pipefail
cd "$(dirname "$0")/../.."
SIZE_MIB=${SIZE_MIB:-512}
WRK_SECONDS=${WRK_SECONDS:-10}
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 1; }
command -v docker-registry >/dev/null || { echo "docker-registry is not installed" >&2; exit 1; }
# The skiff binary when the whole workspace builds; otherwise the registry crate's bare server
# (examples/serve.rs: the same skiff_registry::serve that `skiff registry serve` runs).
# SKIFF_BENCH_FULL=1 builds and measures the whole skiff binary instead.
if [ "${SKIFF_BENCH_FULL:-0}" = 1 ] && nice cargo build --release -q -p skiff; then
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

blob=$work/blob.bin
head -c "$((SIZE_MIB << 20))" /dev/urandom > "$blob"
digest=sha256:$(sha256sum "$blob" | cut -d' ' -f1)
cat "$blob" > /dev/null # page cache

rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }
wait_up() { for _ in $(seq 100); do curl -sf -o /dev/null "http://$1/v2/" && return 0; sleep 0.1; done; return 1; }

measure() { # name addr pid
  local name=$1 addr=$2 pid=$3 url="http://$2/v2/bench/blob"
  wait_up "$addr"; sleep 1
  local idle; idle=$(rss "$pid")
  local location
  location=$(curl -sf -D - -o /dev/null -X POST "$url/blobs/uploads/" | awk 'tolower($1)=="location:" {print $2}' | tr -d '\r')
  case "$location" in http*) ;; *) location="http://$addr$location" ;; esac
  local sep='?'; case "$location" in *\?*) sep='&' ;; esac
  local push
  push=$(curl -sf -o /dev/null -w '%{time_total}' -X PUT -H 'Content-Type: application/octet-stream' \
    -T "$blob" "$location${sep}digest=$digest")
  local after; after=$(rss "$pid")
  local pull
  pull=$(curl -sf -o /dev/null -w '%{time_total}' "$url/blobs/$digest")
  # A manifest pointing at the blob, for the GET benchmark.
  local config='{}' cdigest
  cdigest=sha256:$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)
  curl -sf -o /dev/null -X POST "$url/blobs/uploads/" -D "$work/h" >/dev/null
  location=$(awk 'tolower($1)=="location:" {print $2}' "$work/h" | tr -d '\r')
  case "$location" in http*) ;; *) location="http://$addr$location" ;; esac
  sep='?'; case "$location" in *\?*) sep='&' ;; esac
  curl -sf -o /dev/null -X PUT --data-binary "$config" "$location${sep}digest=$cdigest"
  local manifest
  manifest=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}' "$cdigest" "$digest" "$((SIZE_MIB << 20))")
  curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "$manifest" "$url/manifests/v1"
  local rps
  rps=$(wrk -t2 -c32 -d"${WRK_SECONDS}s" -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$url/manifests/v1" | awk '/Requests\/sec/ {print $2}')
  local after_all; after_all=$(rss "$pid")
  echo "$name $push $pull $rps $idle $after $after_all"
}

# Distribution 2.8 with filesystem storage and deletes enabled.
mkdir -p "$work/dist"
cat > "$work/dist.yml" <<YML
version: 0.1
log: { level: error }
storage:
  filesystem: { rootdirectory: $work/dist }
  delete: { enabled: true }
http: { addr: 127.0.0.1:39101 }
YML
docker-registry serve "$work/dist.yml" > "$work/dist.log" 2>&1 &
pids+=($!)
dist=$(measure distribution 127.0.0.1:39101 $!)
kill "${pids[0]}"

serve_skiff 127.0.0.1:39102 "$work/skiff" 2> "$work/skiff.log" &
pids+=($!)
skiff=$(measure skiff 127.0.0.1:39102 $!)

echo "skiff server: $server_kind"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024/1024)}' /proc/meminfo) GiB; blob ${SIZE_MIB} MiB"
echo "name push_s pull_s manifest_rps rss_idle_mb rss_after_push_mb rss_after_all_mb"
echo "$dist"
echo "$skiff"
read -r _ dpush dpull drps didle dafter _ <<<"$dist"
read -r _ spush spull srps sidle safter _ <<<"$skiff"
awk -v dp="$dpush" -v sp="$spush" -v dl="$dpull" -v sl="$spull" -v dr="$drps" -v sr="$srps" -v size="$SIZE_MIB" 'BEGIN {
  printf "push: skiff %.0f MiB/s vs distribution %.0f MiB/s = %.2fx\n", size/sp, size/dp, dp/sp
  printf "pull: skiff %.0f MiB/s vs distribution %.0f MiB/s = %.2fx\n", size/sl, size/dl, dl/sl
  printf "manifest GET: skiff %.0f req/s vs distribution %.0f req/s = %.2fx\n", sr, dr, sr/dr
}'
echo "idle RSS: skiff ${sidle} MB vs distribution ${didle} MB; after push: skiff ${safter} MB vs distribution ${dafter} MB"
