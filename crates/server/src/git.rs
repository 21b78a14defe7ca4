//! The server's use of `git` (the CLI, as the runner host has it): a bare mirror of each
//! repository under `data_dir/git` to read the pipeline file at a commit, and checkouts of a
//! commit into a build's workspace. The runner clones itself, so no clone image is needed.

use crate::Error;
use skiff_store::Repo;
use std::path::{Path, PathBuf};
use tokio::process::Command;

pub(crate) struct Git {
    root: PathBuf,
    /// One fetch at a time: mirrors are shared by webhooks and runners.
    lock: tokio::sync::Mutex<()>,
}

impl Git {
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn mirror_path(&self, repo: &Repo) -> PathBuf {
        self.root.join(format!("{}.git", repo.id))
    }

    /// Makes sure the mirror has `sha`, cloning or fetching as needed; returns its path.
    pub async fn mirror_with(&self, repo: &Repo, sha: &str) -> Result<PathBuf, Error> {
        let _guard = self.lock.lock().await;
        let path = self.mirror_path(repo);
        if !path.join("HEAD").exists() {
            std::fs::create_dir_all(&self.root).map_err(Error::Io)?;
            let tmp = self.root.join(format!("{}.git.tmp", repo.id));
            let _ = std::fs::remove_dir_all(&tmp);
            run(
                "clone",
                Command::new("git")
                    .args(["clone", "--mirror", "--quiet", "--", &repo.git_url])
                    .arg(&tmp),
            )
            .await?;
            std::fs::rename(&tmp, &path).map_err(Error::Io)?;
        }
        if !sha.is_empty() && !has_commit(&path, sha).await {
            run(
                "fetch",
                Command::new("git")
                    .arg("--git-dir")
                    .arg(&path)
                    .args(["fetch", "--quiet", "--prune", "origin"]),
            )
            .await?;
            if !has_commit(&path, sha).await {
                return Err(Error::Git {
                    action: "fetch".into(),
                    reason: format!("commit {sha} is not in {}", repo.git_url),
                });
            }
        }
        Ok(path)
    }

    /// The text of `file` at `sha`, or `None` when the commit has no such file.
    pub async fn read_file(
        &self,
        repo: &Repo,
        sha: &str,
        file: &str,
    ) -> Result<Option<String>, Error> {
        let mirror = self.mirror_with(repo, sha).await?;
        let output = Command::new("git")
            .arg("--git-dir")
            .arg(&mirror)
            .args(["show", &format!("{sha}:{file}")])
            .env("GIT_TERMINAL_PROMPT", "0")
            .output()
            .await
            .map_err(Error::Io)?;
        if !output.status.success() {
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&output.stdout).into_owned()))
    }

    /// The commit a ref points at in the mirror (manual runs by branch).
    pub async fn resolve(&self, repo: &Repo, git_ref: &str) -> Result<String, Error> {
        let mirror = self.mirror_with(repo, "").await?;
        run(
            "fetch",
            Command::new("git")
                .arg("--git-dir")
                .arg(&mirror)
                .args(["fetch", "--quiet", "--prune", "origin"]),
        )
        .await?;
        let out = run(
            "rev-parse",
            Command::new("git").arg("--git-dir").arg(&mirror).args([
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{git_ref}^{{commit}}"),
            ]),
        )
        .await?;
        Ok(out.trim().to_string())
    }

    /// Checks `sha` out into `dest` (created), with `origin` pointing at the repository's URL.
    pub async fn checkout(&self, repo: &Repo, sha: &str, dest: &Path) -> Result<(), Error> {
        let mirror = self.mirror_with(repo, sha).await?;
        let _ = std::fs::remove_dir_all(dest);
        run(
            "clone",
            Command::new("git")
                .args(["clone", "--quiet", "--no-checkout", "--"])
                .arg(&mirror)
                .arg(dest),
        )
        .await?;
        run(
            "checkout",
            Command::new("git")
                .arg("-C")
                .arg(dest)
                .args(["checkout", "--quiet", "--detach", sha]),
        )
        .await?;
        run(
            "remote",
            Command::new("git").arg("-C").arg(dest).args([
                "remote",
                "set-url",
                "origin",
                &repo.git_url,
            ]),
        )
        .await?;
        Ok(())
    }
}

async fn has_commit(mirror: &Path, sha: &str) -> bool {
    Command::new("git")
        .arg("--git-dir")
        .arg(mirror)
        .args(["cat-file", "-e", &format!("{sha}^{{commit}}")])
        .output()
        .await
        .map(|o| o.status.success())
        .unwrap_or(false)
}

async fn run(action: &str, cmd: &mut Command) -> Result<String, Error> {
    let output = cmd
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Git {
            action: action.into(),
            reason: format!("cannot run git: {e}"),
        })?;
    if !output.status.success() {
        return Err(Error::Git {
            action: action.into(),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Clones `url` into `dest` and checks out `sha`, fetching `git_ref` first (pull request refs
/// are not in a plain clone). Used by remote runners, which have no mirror.
pub(crate) async fn clone_commit(
    url: &str,
    git_ref: &str,
    sha: &str,
    dest: &Path,
) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(dest);
    std::fs::create_dir_all(dest).map_err(Error::Io)?;
    let git = |args: &[&str]| {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(dest).args(args);
        cmd
    };
    run("init", &mut git(&["init", "--quiet"])).await?;
    run("remote", &mut git(&["remote", "add", "--", "origin", url])).await?;
    if !git_ref.is_empty() {
        let spec = format!("+{git_ref}:refs/remotes/origin/skiff-build");
        run("fetch", &mut git(&["fetch", "--quiet", "origin", &spec])).await?;
    }
    if !has_commit(&dest.join(".git"), sha).await {
        run("fetch", &mut git(&["fetch", "--quiet", "origin"])).await?;
    }
    run(
        "checkout",
        &mut git(&["checkout", "--quiet", "--detach", sha]),
    )
    .await?;
    Ok(())
}
