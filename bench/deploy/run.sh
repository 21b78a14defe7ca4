#!/usr/bin/env bash
# Deploy benchmark (not run by tests): an app of 200 resources — 1 Namespace, 100 ConfigMaps,
# 50 Services, 49 Deployments (1 replica each, made Ready by KWOK) — deployed and then
# redeployed unchanged, by Skiff, by `kubectl apply --server-side` (+ `kubectl wait` for the
# Deployments, since skiff waits for readiness) and by kapp (`kapp deploy -y`, which waits too),
# one run each on the same API server.
#   eval "$(scripts/k8s-testenv up)"; cargo build --release -p skiff; bench/deploy/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
: "${KUBECONFIG:?run: eval \"\$(scripts/k8s-testenv up)\"}"
SKIFF=${SKIFF:-target/release/skiff}
[ -x "$SKIFF" ] || die "build skiff first: cargo build --release -p skiff"
KUBECTL=${KUBECTL:-$(scripts/k8s-testenv kubectl)}   # built from k8s.io/kubernetes on first use
KAPP=${KAPP:-$(scripts/k8s-testenv kapp)}            # built from carvel.dev/kapp on first use
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT

# gen NAMESPACE DIR: write the 200-resource set.
gen() {
  local ns=$1 dir=$2; mkdir -p "$dir"
  printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s}\n' "$ns" > "$dir/00-ns.yaml"
  for i in $(seq 1 100); do
    printf -- '---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%s, namespace: %s}\ndata: {index: "%s"}\n' "$i" "$ns" "$i"
  done > "$dir/10-configmaps.yaml"
  for i in $(seq 1 50); do
    printf -- '---\napiVersion: v1\nkind: Service\nmetadata: {name: svc-%s, namespace: %s}\nspec:\n  selector: {app: app-%s}\n  ports: [{port: 80}]\n' "$i" "$ns" "$i"
  done > "$dir/20-services.yaml"
  for i in $(seq 1 49); do
    printf -- '---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app-%s, namespace: %s}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: app-%s}}\n  template:\n    metadata: {labels: {app: app-%s}}\n    spec: {containers: [{name: main, image: "registry.example/app:1"}]}\n' "$i" "$ns" "$i" "$i"
  done > "$dir/30-deployments.yaml"
}

# timed LABEL CMD...: run, print seconds.
timed() {
  local label=$1; shift
  local start end
  start=$(date +%s.%N)
  "$@" >"$work/$label.log" 2>&1 || { tail -20 "$work/$label.log" >&2; die "$label failed"; }
  end=$(date +%s.%N)
  printf '%s %.2f\n' "$label" "$(echo "$end - $start" | bc)"
}

suffix=$(date +%s)
gen "bench-skiff-$suffix" "$work/skiff"
gen "bench-kubectl-$suffix" "$work/kubectl"
gen "bench-kapp-$suffix" "$work/kapp"

kubectl_apply() {
  "$KUBECTL" apply --server-side --field-manager=bench -f "$work/kubectl" &&
    "$KUBECTL" wait --for=condition=Available --timeout=300s deployment --all -n "bench-kubectl-$suffix"
}

timed skiff-first "$SKIFF" deploy -a "bench-$suffix" -f "$work/skiff" --yes --no-diff
timed skiff-noop "$SKIFF" deploy -a "bench-$suffix" -f "$work/skiff" --yes --no-diff
timed kubectl-first kubectl_apply
timed kubectl-noop kubectl_apply
# kapp keeps its app record (a ConfigMap) in the kubeconfig's namespace, like skiff's Secret.
timed kapp-first "$KAPP" deploy -a "bench-kapp-$suffix" -f "$work/kapp" -y
timed kapp-noop "$KAPP" deploy -a "bench-kapp-$suffix" -f "$work/kapp" -y

"$SKIFF" deploy delete -a "bench-$suffix" --yes >/dev/null 2>&1 || true
"$KUBECTL" delete namespace "bench-kubectl-$suffix" --wait=false >/dev/null 2>&1 || true
"$KAPP" delete -a "bench-kapp-$suffix" -y --wait=false >/dev/null 2>&1 || true
