//! Connecting to a cluster the way kubectl does (`KUBECONFIG`, `~/.kube/config`, in-cluster),
//! or from a kubeconfig held in an environment variable — how a pipeline step receives it from
//! a secret without writing it to disk.

use crate::error::{Error, Result};
use base64::Engine as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where the kubeconfig comes from.
#[derive(Debug, Clone, Default)]
pub enum KubeconfigSource {
    /// `KUBECONFIG`, then `~/.kube/config`, then the in-cluster service account.
    #[default]
    Default,
    /// The content (YAML, or base64 of YAML) of this environment variable.
    Env(String),
    /// This kubeconfig text (YAML, or base64 of YAML), e.g. a pipeline step's secret setting.
    Inline(String),
}

fn config_err(message: impl std::fmt::Display) -> Error {
    Error::Config {
        message: message.to_string(),
    }
}

/// Parse kubeconfig text that may be base64-encoded (as secrets often are).
pub fn parse_kubeconfig(text: &str) -> Result<Kubeconfig> {
    match Kubeconfig::from_yaml(text) {
        Ok(config) if config.clusters.iter().any(|c| c.cluster.is_some()) => Ok(config),
        first => {
            let compact: String = text.split_whitespace().collect();
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok());
            match decoded {
                Some(yaml) => Kubeconfig::from_yaml(&yaml).map_err(config_err),
                None => first.map_err(config_err),
            }
        }
    }
}

/// A client for the cluster of the current context, and that context's namespace.
pub async fn connect(
    source: &KubeconfigSource,
    context: Option<&str>,
) -> Result<(kube::Client, Option<String>)> {
    // Several TLS backends may be compiled into the binary; pick one explicitly. An error only
    // means a provider was installed already, which is fine.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match source {
        KubeconfigSource::Default if context.is_none() => {
            kube::Config::infer().await.map_err(config_err)?
        }
        KubeconfigSource::Default => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(config_err)?,
        KubeconfigSource::Env(var) => {
            let text = std::env::var(var)
                .map_err(|_| config_err(format!("environment variable {var} is not set")))?;
            let kubeconfig = parse_kubeconfig(&text)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(config_err)?
        }
        KubeconfigSource::Inline(text) => {
            let kubeconfig = parse_kubeconfig(text)?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(config_err)?
        }
    };
    let namespace = Some(config.default_namespace.clone());
    let client = kube::Client::try_from(config).map_err(config_err)?;
    Ok((client, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster: {server: 'https://127.0.0.1:6443'}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: t\n  context: {cluster: t, user: u}\ncurrent-context: t\n";

    #[test]
    fn plain_and_base64_kubeconfigs() {
        assert_eq!(parse_kubeconfig(CONFIG).expect("plain").clusters.len(), 1);
        let encoded = base64::engine::general_purpose::STANDARD.encode(CONFIG);
        assert_eq!(
            parse_kubeconfig(&encoded).expect("base64").clusters.len(),
            1
        );
        assert!(parse_kubeconfig("not: [a kubeconfig").is_err());
    }
}
