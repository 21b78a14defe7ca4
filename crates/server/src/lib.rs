//! The CI control plane (being built; see lib docs once it lands).
