//! The runner's one error type. Backends and the engine return it; the binary turns it into a
//! message for people. Variants carry the step or resource they are about.

use std::path::PathBuf;

/// Everything that can go wrong while preparing or running a plan.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// The plan cannot run as given (unknown dependency, missing volume, untrusted feature…).
    /// Raised before anything starts.
    #[error("invalid pipeline `{pipeline}`: {message}")]
    InvalidPlan { pipeline: String, message: String },

    /// An image is missing and the pull policy forbids pulling it, or pulling failed.
    #[error("image `{image}` for step `{step}`: {message}")]
    Image {
        step: String,
        image: String,
        message: String,
    },

    /// The Docker Engine could not be reached or refused a request.
    #[error("docker: {action}: {source}")]
    Docker {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },

    /// A host process could not be started or waited for.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `KEY=VALUE` file (secrets, environment) is malformed.
    #[error("{path}:{line}: {message}")]
    EnvFile {
        path: PathBuf,
        line: usize,
        message: String,
    },

    /// An `image_pull_secrets` value is not a docker `config.json`.
    #[error("image pull secret `{name}`: {message}")]
    PullSecret { name: String, message: String },
}

impl RunnerError {
    /// Shorthand for a Docker API failure while doing `action`.
    pub(crate) fn docker(action: impl Into<String>, source: bollard::errors::Error) -> Self {
        RunnerError::Docker {
            action: action.into(),
            source,
        }
    }

    pub(crate) fn invalid(pipeline: &str, message: impl Into<String>) -> Self {
        RunnerError::InvalidPlan {
            pipeline: pipeline.to_string(),
            message: message.into(),
        }
    }
}
