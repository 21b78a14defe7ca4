//! The OCI distribution API and its storage.
