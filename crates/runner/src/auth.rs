//! Registry credentials for image pulls, read from `image_pull_secrets`: each named secret
//! holds a docker `config.json` whose `auths` map gives a registry's user and password,
//! either as `auth` (base64 of `user:password`) or as separate fields, as Drone accepts.

use crate::RunnerError;
use crate::backend::RegistryAuth;
use skiff_dockerconfig::{DOCKER_HUB, normalize_registry};

/// The credentials in one docker `config.json` (the value of the secret `name`).
pub fn parse_docker_config(name: &str, json: &str) -> Result<Vec<RegistryAuth>, RunnerError> {
    skiff_dockerconfig::parse(json).map_err(|e| RunnerError::PullSecret {
        name: name.to_string(),
        message: e.to_string(),
    })
}

/// The registry an image reference is pulled from (`docker.io` for short names).
pub fn image_registry(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            normalize_registry(first)
        }
        _ => DOCKER_HUB.to_string(),
    }
}

/// The credentials to use for `image`, if any.
pub fn auth_for<'a>(auths: &'a [RegistryAuth], image: &str) -> Option<&'a RegistryAuth> {
    let registry = image_registry(image);
    auths.iter().find(|a| a.registry == registry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_secret_errors_name_the_secret() {
        let error = parse_docker_config("dockerconfig", "not json").expect_err("invalid");
        assert!(error.to_string().contains("dockerconfig"), "{error}");
        let auths = parse_docker_config(
            "dockerconfig",
            r#"{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"}}}"#,
        )
        .expect("valid config");
        assert_eq!(auths[0].registry, "docker.io");
    }

    #[test]
    fn finds_registry_of_image() {
        assert_eq!(image_registry("golang:1.22"), "docker.io");
        assert_eq!(image_registry("library/golang"), "docker.io");
        assert_eq!(image_registry("ghcr.io/o/i:1"), "ghcr.io");
        assert_eq!(image_registry("localhost/i"), "localhost");
        assert_eq!(image_registry("127.0.0.1:5000/i"), "127.0.0.1:5000");
    }
}
