// Wrapper module for scripts/k8s-testenv: builds the kwok controller (cmd/kwok) at a pinned version.
module skiff.local/k8s-testenv/kwok

go 1.26.0

require sigs.k8s.io/kwok v0.8.0
