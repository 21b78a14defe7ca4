# Shared helpers for the test-environment scripts. Source it; do not run it.
# State that must survive between runs (built tools, docker's image store) lives outside the
# clone under SKIFF_CACHE; per-run state (sockets, pids) lives under SKIFF_RUN.
SKIFF_CACHE=${SKIFF_CACHE:-/var/cache/skiff-testenv}
SKIFF_RUN=${SKIFF_RUN:-/run/skiff-testenv}
mkdir -p "$SKIFF_CACHE" "$SKIFF_RUN"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Install Debian packages that are missing; quiet when everything is present.
need_packages() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  if [ -z "${SKIFF_APT_UPDATED:-}" ]; then
    apt-get update -qq >/dev/null 2>&1 || log "apt-get update failed; trying the cached lists"
    export SKIFF_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Wait until a command succeeds, or fail after N tries (half a second apart).
wait_for() {
  local tries=$1; shift
  for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}
