//! `skiff lock`: wires the command line to `skiff_deploy::lock` — read manifests (files,
//! folders or Helm output on stdin), pin images to digests, write the lock file and print the
//! rewritten manifests.

use anyhow::Context;
use skiff_deploy::image::LockFile;
use skiff_deploy::registry::{CredentialStore, Resolver};
use std::path::PathBuf;
use std::process::ExitCode;

/// Resolve image references in manifests to digests and write a lock file.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// Manifest files or folders; `-` reads stdin (e.g. `helm template … | skiff lock -f -`).
    #[arg(short = 'f', long = "file", required = true)]
    files: Vec<PathBuf>,
    /// The lock file: read to reuse earlier resolutions, then rewritten.
    #[arg(short = 'l', long, default_value = "skiff.lock.yaml")]
    lock_file: PathBuf,
    /// Write the pinned manifests here instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// Ask the registries again even for references the lock file already has.
    #[arg(long)]
    update: bool,
    /// Registries to reach over plain HTTP (loopback registries always are).
    #[arg(long, value_name = "HOST[:PORT]")]
    plain_http: Vec<String>,
}

pub fn run(args: LockArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(lock(args))
}

async fn lock(args: LockArgs) -> anyhow::Result<ExitCode> {
    let documents = skiff_deploy::load_paths(&args.files)?;
    let mut objects: Vec<_> = documents.into_iter().map(|d| d.object).collect();
    let mut lock = LockFile::read(&args.lock_file)?;
    let resolver = Resolver::new(CredentialStore::load()?, args.plain_http.clone())?;
    let report = skiff_deploy::lock::lock(&mut objects, &mut lock, &resolver, args.update).await?;
    lock.write(&args.lock_file)?;
    let yaml = skiff_deploy::manifest::to_yaml(&objects)
        .map_err(|e| anyhow::anyhow!("rendering the manifests: {e}"))?;
    match &args.output {
        Some(path) => std::fs::write(path, yaml).with_context(|| format!("{}", path.display()))?,
        None => print!("{yaml}"),
    }
    eprintln!(
        "locked {} image(s) in {}: {} resolved, {} from the lock file, {} already pinned",
        lock.images.len(),
        args.lock_file.display(),
        report.resolved.len(),
        report.reused.len(),
        report.pinned.len()
    );
    Ok(ExitCode::SUCCESS)
}
