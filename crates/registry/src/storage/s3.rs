//! S3-compatible object storage backend (placeholder).
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: String,
}

pub fn open(_config: &S3Config) -> Result<std::sync::Arc<dyn super::Storage>> {
    Err(Error::Internal("S3 storage is not available yet".into()))
}
