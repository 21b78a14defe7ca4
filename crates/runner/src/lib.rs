//! Executes a pipeline [`skiff_pipeline::Plan`] on a backend.
