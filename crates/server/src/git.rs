//! The server's use of `git` (the CLI, as the runner host has it): a bare mirror of each
//! repository under `data_dir/git` to read the pipeline file at a commit, and checkouts of a
//! commit into a build's workspace. The runner clones itself, so no clone image is needed.

use crate::Error;
use skiff_store::Repo;
use std::path::{Path, PathBuf};
use tokio::process::Command;

pub(crate) struct Git {
    root: PathBuf,
    /// Where hosted repositories are: they are their own mirror.
    hosted_root: PathBuf,
    /// One fetch at a time: mirrors are shared by webhooks and runners.
    lock: tokio::sync::Mutex<()>,
}

impl Git {
    pub fn new(root: PathBuf, hosted_root: PathBuf) -> Self {
        Self {
            root,
            hosted_root,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    fn mirror_path(&self, repo: &Repo) -> PathBuf {
        self.root.join(format!("{}.git", repo.id))
    }

    /// Makes sure the mirror has `sha`, cloning or fetching as needed; returns its path. A
    /// hosted repository is its own mirror: a commit it lacks is not anywhere else.
    pub async fn mirror_with(&self, repo: &Repo, sha: &str) -> Result<PathBuf, Error> {
        if repo.hosted {
            let path = crate::hosting::bare_repo_path(&self.hosted_root, &repo.owner, &repo.name);
            if !sha.is_empty() && !has_commit(&path, sha).await {
                return Err(Error::Git {
                    action: "read".into(),
                    reason: format!("commit {sha} is not in {}", repo.slug()),
                });
            }
            return Ok(path);
        }
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
        if !repo.hosted {
            run(
                "fetch",
                Command::new("git")
                    .arg("--git-dir")
                    .arg(&mirror)
                    .args(["fetch", "--quiet", "--prune", "origin"]),
            )
            .await?;
        }
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
    /// Without `depth` the whole history comes along (Drone's default); with `clone: depth: N`
    /// only the commit and its N-1 ancestors are fetched from the mirror.
    pub async fn checkout(
        &self,
        repo: &Repo,
        sha: &str,
        depth: Option<u32>,
        dest: &Path,
    ) -> Result<(), Error> {
        let mirror = self.mirror_with(repo, sha).await?;
        if let Some(depth) = depth.filter(|d| *d > 0) {
            // The mirror has every ref (pull request refs and tags too), so the commit itself
            // can be asked for; `git-upload-pack` serves any commit it has over protocol v2.
            let source = mirror.to_string_lossy();
            return fetch_commit(&source, &repo.git_url, "", sha, depth, dest, None).await;
        }
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

/// `git -C dir ARGS`, sending `auth_header` with HTTP requests when given.
fn git_in(dir: &Path, auth_header: Option<&str>, args: &[&str]) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir).args(args);
    if let Some(header) = auth_header {
        cmd.env("GIT_CONFIG_COUNT", "1")
            .env("GIT_CONFIG_KEY_0", "http.extraHeader")
            .env("GIT_CONFIG_VALUE_0", header);
    }
    cmd
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

/// Runs a git command without a terminal prompt; its stdout, or its stderr as the error.
pub(crate) async fn run(action: &str, cmd: &mut Command) -> Result<String, Error> {
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
/// are not in a plain clone). Used by remote runners, which have no mirror. With `depth`
/// (`clone: depth: N`) the fetch is shallow. `auth_header` (`Authorization: …`) is sent with
/// every HTTP request git makes, passed in the environment so it is neither in the process
/// list nor kept in the workspace's git config.
pub(crate) async fn clone_commit(
    url: &str,
    git_ref: &str,
    sha: &str,
    depth: Option<u32>,
    dest: &Path,
    auth_header: Option<&str>,
) -> Result<(), Error> {
    if let Some(depth) = depth.filter(|d| *d > 0) {
        return fetch_commit(url, url, git_ref, sha, depth, dest, auth_header).await;
    }
    let _ = std::fs::remove_dir_all(dest);
    std::fs::create_dir_all(dest).map_err(Error::Io)?;
    let git = |args: &[&str]| git_in(dest, auth_header, args);
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

/// A shallow checkout of `sha` from `source` into `dest` (created), `depth` commits deep, with
/// `origin` set to `origin_url`. The commit is asked for by its id first (protocol v2 servers,
/// and v0 servers with `uploadpack.allowReachableSHA1InWant`, serve it); a server that refuses
/// gets a shallow fetch of `git_ref` instead (the build's branch, tag or pull request ref). If
/// the ref has moved more than `depth` commits past `sha`, the ref is fetched in full rather
/// than failing the build.
async fn fetch_commit(
    source: &str,
    origin_url: &str,
    git_ref: &str,
    sha: &str,
    depth: u32,
    dest: &Path,
    auth_header: Option<&str>,
) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(dest);
    std::fs::create_dir_all(dest).map_err(Error::Io)?;
    let git = |args: &[&str]| git_in(dest, auth_header, args);
    let depth = format!("--depth={depth}");
    run("init", &mut git(&["init", "--quiet"])).await?;
    run(
        "remote",
        &mut git(&["remote", "add", "--", "origin", source]),
    )
    .await?;
    let by_id = run(
        "fetch",
        &mut git(&["fetch", "--quiet", "--no-tags", &depth, "origin", sha]),
    )
    .await;
    let git_dir = dest.join(".git");
    if by_id.is_err() || !has_commit(&git_dir, sha).await {
        if git_ref.is_empty() {
            by_id?;
        } else {
            let spec = format!("+{git_ref}:refs/remotes/origin/skiff-build");
            run(
                "fetch",
                &mut git(&["fetch", "--quiet", "--no-tags", &depth, "origin", &spec]),
            )
            .await?;
            if !has_commit(&git_dir, sha).await {
                run(
                    "fetch",
                    &mut git(&[
                        "fetch",
                        "--quiet",
                        "--no-tags",
                        "--unshallow",
                        "origin",
                        &spec,
                    ]),
                )
                .await?;
            }
        }
    }
    run(
        "checkout",
        &mut git(&["checkout", "--quiet", "--detach", sha]),
    )
    .await?;
    if source != origin_url {
        run(
            "remote",
            &mut git(&["remote", "set-url", "origin", origin_url]),
        )
        .await?;
    }
    Ok(())
}
