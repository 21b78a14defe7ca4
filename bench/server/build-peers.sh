#!/usr/bin/env bash
# Builds the peer CI servers that bench/server/run.sh compares `skiff server` with, from Go
# modules, into /var/cache/skiff-testenv/peers/. Not run by the tests; run.sh skips a peer
# whose binary is missing. Idempotent: a binary already built for this version is kept.
#
#   bench/server/build-peers.sh
#
# Peers tried, in the order of the issue:
# - Drone (github.com/harness/drone, github.com/drone/drone, v2.x, cmd/drone-server) and
#   Woodpecker (go.woodpecker-ci.org/woodpecker/v2 and v3, cmd/server): the Go module proxy
#   reachable here refuses these module paths (403 "This module version is not available"),
#   so they cannot be built on this machine; the script tries them and says so.
# - Gitea (code.gitea.io/gitea, whose Actions are its CI server): served. Its go.mod has
#   replace directives, so `go install` refuses it; the module is downloaded with
#   `go mod download -json` and built inside a copy of that directory. The web front end
#   (public/assets, built with pnpm) is not in the module: Gitea serves its templates and API
#   without it, the pages just miss their JavaScript and CSS.
set -euo pipefail
peers=${SKIFF_PEERS_DIR:-/var/cache/skiff-testenv/peers}
gitea_version=${GITEA_VERSION:-v1.27.3}
mkdir -p "$peers"

try_module() { # module@version: prints whether the proxy serves it
  if go list -m -json "$1" >/dev/null 2>"$peers/last-error"; then
    echo "served: $1"
    return 0
  fi
  echo "not buildable here: $1: $(grep -m1 -o '40[0-9] [A-Za-z ]*' "$peers/last-error" || head -c 200 "$peers/last-error")"
  return 1
}

for m in github.com/harness/drone@latest github.com/drone/drone@latest \
  github.com/drone/drone@v2.20.0+incompatible go.woodpecker-ci.org/woodpecker/v3@latest \
  go.woodpecker-ci.org/woodpecker/v2@latest; do
  try_module "$m" || true
done

gitea_bin=$peers/gitea-$gitea_version
if [ -x "$gitea_bin" ]; then
  echo "gitea: $gitea_bin (cached)"
else
  try_module "code.gitea.io/gitea@$gitea_version"
  dir=$(go mod download -json "code.gitea.io/gitea@$gitea_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  src=$peers/gitea-src-$gitea_version
  rm -rf "$src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  # Gitea's own release flags, less the front end: SQLite (cgo) and the timezone data.
  (cd "$src" && CGO_ENABLED=1 nice go build -trimpath -tags 'sqlite sqlite_unlock_notify' \
    -ldflags "-s -w -X main.Version=${gitea_version#v}" -o "$gitea_bin.tmp" .)
  mv "$gitea_bin.tmp" "$gitea_bin"
  echo "gitea: $gitea_bin"
fi
# The built tree (templates, options) is what Gitea reads at run time without bindata.
ln -sfn "$peers/gitea-src-$gitea_version" "$peers/gitea-src"
ln -sfn "$gitea_bin" "$peers/gitea"
