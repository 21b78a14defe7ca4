//! The build's facts ([`BuildContext`]) and the `DRONE_*` / `CI_*` environment Drone gives every
//! step (drone/runner-go `environ/*.go`): the same set drives `${...}` substitution and step
//! environments, so both come from this one function.

use crate::plan::Platform;
use std::collections::BTreeMap;

/// Everything about the event a build runs for (what Drone's server knows).
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    /// push | pull_request | tag | promote | rollback | cron | custom
    pub event: String,
    pub action: String,
    pub branch: String,
    pub source_branch: String,
    /// The branch conditions compare against (Drone's `build.Target`); falls back to `branch`.
    pub target_branch: String,
    pub git_ref: String,
    pub sha: String,
    pub before: String,
    pub message: String,
    pub author: String,
    pub author_email: String,
    pub repo_owner: String,
    pub repo_name: String,
    pub repo_default_branch: String,
    pub remote_url: String,
    pub link: String,
    pub build_number: u64,
    pub parent: u64,
    pub deploy_to: String,
    pub cron: String,
    /// The server host (`when.instance`).
    pub instance: String,
    pub system_host: String,
    pub system_proto: String,
    pub params: BTreeMap<String, String>,
    pub changed_paths: Vec<String>,
    pub trusted: bool,
    pub created_unix: i64,
}

impl BuildContext {
    /// `owner/name`.
    pub fn slug(&self) -> String {
        if self.repo_owner.is_empty() {
            self.repo_name.clone()
        } else {
            format!("{}/{}", self.repo_owner, self.repo_name)
        }
    }

    /// The branch conditions and `DRONE_BRANCH` use.
    pub fn target(&self) -> &str {
        if self.target_branch.is_empty() {
            &self.branch
        } else {
            &self.target_branch
        }
    }

    /// The tag name when the ref is `refs/tags/*`.
    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }
}

/// Does the commit message ask to skip CI (`[ci skip]`, `[skip ci]`, `***no_ci***`)? Drone's
/// server honours this for every event except tag, cron, custom, promote and rollback.
pub fn skip_requested(ctx: &BuildContext) -> bool {
    if matches!(
        ctx.event.as_str(),
        "tag" | "cron" | "custom" | "promote" | "rollback"
    ) {
        return false;
    }
    let m = ctx.message.to_lowercase();
    m.contains("[ci skip]") || m.contains("[skip ci]") || m.contains("***no_ci***")
}

/// The full `DRONE_*` and `CI_*` set for one stage, plus the build's params.
pub fn drone_environment(
    ctx: &BuildContext,
    stage_name: &str,
    stage_number: usize,
    platform: &Platform,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let mut set = |k: &str, v: &str| {
        env.insert(k.to_string(), v.to_string());
    };
    let slug = ctx.slug();
    let target = ctx.target().to_string();
    let proto = if ctx.system_proto.is_empty() {
        "http"
    } else {
        &ctx.system_proto
    };
    let created = ctx.created_unix.to_string();
    let number = ctx.build_number.to_string();
    let parent = ctx.parent.to_string();
    let build_link = format!("{proto}://{}/{slug}/{number}", ctx.system_host);
    let repo_link = if ctx.system_host.is_empty() {
        String::new()
    } else {
        format!("{proto}://{}/{slug}", ctx.system_host)
    };

    // System.
    set("CI", "true");
    set("DRONE", "true");
    set("DRONE_SYSTEM_PROTO", proto);
    set("DRONE_SYSTEM_HOST", &ctx.system_host);
    set("DRONE_SYSTEM_HOSTNAME", &ctx.system_host);
    set("DRONE_SYSTEM_VERSION", env!("CARGO_PKG_VERSION"));
    // Repository.
    set("DRONE_REPO", &slug);
    set("DRONE_REPO_SCM", "git");
    set("DRONE_REPO_OWNER", &ctx.repo_owner);
    set("DRONE_REPO_NAMESPACE", &ctx.repo_owner);
    set("DRONE_REPO_NAME", &ctx.repo_name);
    set("DRONE_REPO_LINK", &repo_link);
    set("DRONE_REPO_BRANCH", &ctx.repo_default_branch);
    set("DRONE_REMOTE_URL", &ctx.remote_url);
    set("DRONE_GIT_HTTP_URL", &ctx.remote_url);
    set("DRONE_GIT_SSH_URL", "");
    set("DRONE_REPO_VISIBILITY", "private");
    set("DRONE_REPO_PRIVATE", "true");
    // Build and commit.
    set("DRONE_BRANCH", &target);
    set(
        "DRONE_SOURCE_BRANCH",
        if ctx.source_branch.is_empty() {
            &ctx.branch
        } else {
            &ctx.source_branch
        },
    );
    set("DRONE_TARGET_BRANCH", &target);
    set("DRONE_COMMIT", &ctx.sha);
    set("DRONE_COMMIT_SHA", &ctx.sha);
    set("DRONE_COMMIT_BEFORE", &ctx.before);
    set("DRONE_COMMIT_AFTER", &ctx.sha);
    set("DRONE_COMMIT_REF", &ctx.git_ref);
    set("DRONE_COMMIT_BRANCH", &target);
    set("DRONE_COMMIT_LINK", &ctx.link);
    set("DRONE_COMMIT_MESSAGE", &ctx.message);
    set("DRONE_COMMIT_AUTHOR", &ctx.author);
    set("DRONE_COMMIT_AUTHOR_NAME", &ctx.author);
    set("DRONE_COMMIT_AUTHOR_EMAIL", &ctx.author_email);
    set("DRONE_COMMIT_AUTHOR_AVATAR", "");
    set("DRONE_BUILD_NUMBER", &number);
    set("DRONE_BUILD_PARENT", &parent);
    set("DRONE_BUILD_EVENT", &ctx.event);
    set("DRONE_BUILD_ACTION", &ctx.action);
    set("DRONE_BUILD_STATUS", "success");
    set("DRONE_BUILD_DEBUG", "false");
    set("DRONE_BUILD_CREATED", &created);
    set("DRONE_BUILD_STARTED", &created);
    set("DRONE_BUILD_FINISHED", &created);
    set("DRONE_BUILD_TRIGGER", &ctx.author);
    set("DRONE_BUILD_LINK", &build_link);
    set("DRONE_DEPLOY_TO", &ctx.deploy_to);
    set("DRONE_DEPLOY_ID", "");
    set("DRONE_CRON", &ctx.cron);
    // Stage.
    set("DRONE_STAGE_KIND", "pipeline");
    set("DRONE_STAGE_TYPE", "docker");
    set("DRONE_STAGE_NAME", stage_name);
    set("DRONE_STAGE_NUMBER", &stage_number.to_string());
    set("DRONE_STAGE_MACHINE", "");
    set("DRONE_STAGE_OS", &platform.os);
    set("DRONE_STAGE_ARCH", &platform.arch);
    set(
        "DRONE_STAGE_VARIANT",
        platform.variant.as_deref().unwrap_or(""),
    );
    set(
        "DRONE_STAGE_VERSION",
        platform.version.as_deref().unwrap_or(""),
    );
    set("DRONE_STAGE_STATUS", "success");
    set("DRONE_STAGE_STARTED", &created);
    set("DRONE_STAGE_FINISHED", &created);
    set("DRONE_STAGE_DEPENDS_ON", "");
    set("DRONE_CARD_PATH", "/dev/stdout");
    // Legacy CI_* aliases.
    set("CI_REPO", &slug);
    set("CI_REPO_NAME", &slug);
    set("CI_REPO_LINK", &repo_link);
    set("CI_REPO_REMOTE", &ctx.remote_url);
    set("CI_REMOTE_URL", &ctx.remote_url);
    set("CI_REPO_PRIVATE", "true");
    set("CI_BUILD_NUMBER", &number);
    set("CI_PARENT_BUILD_NUMBER", &parent);
    set("CI_BUILD_CREATED", &created);
    set("CI_BUILD_STARTED", &created);
    set("CI_BUILD_FINISHED", &created);
    set("CI_BUILD_STATUS", "success");
    set("CI_BUILD_EVENT", &ctx.event);
    set("CI_BUILD_LINK", &build_link);
    set("CI_BUILD_TARGET", &ctx.deploy_to);
    set("CI_COMMIT_SHA", &ctx.sha);
    set("CI_COMMIT_REF", &ctx.git_ref);
    set("CI_COMMIT_BRANCH", &target);
    set("CI_COMMIT_MESSAGE", &ctx.message);
    set("CI_COMMIT_AUTHOR", &ctx.author);
    set("CI_COMMIT_AUTHOR_NAME", &ctx.author);
    set("CI_COMMIT_AUTHOR_EMAIL", &ctx.author_email);
    set("CI_COMMIT_AUTHOR_AVATAR", "");

    if ctx.event == "pull_request" {
        let digits: String = ctx
            .git_ref
            .chars()
            .skip_while(|c| !c.is_ascii_digit())
            .take_while(char::is_ascii_digit)
            .collect();
        set("DRONE_PULL_REQUEST", &digits);
        set(
            "DRONE_PULL_REQUEST_TITLE",
            ctx.message.lines().next().unwrap_or(""),
        );
    }
    if let Some(tag) = ctx.tag() {
        set("DRONE_TAG", tag);
        for (k, v) in semver_env(tag) {
            env.insert(k, v);
        }
        for (k, v) in calver_env(tag) {
            env.insert(k, v);
        }
    }
    for (k, v) in &ctx.params {
        env.insert(k.clone(), v.clone());
    }
    env
}

/// `DRONE_SEMVER*` from a tag (a leading `v` is stripped), or `DRONE_SEMVER_ERROR`.
fn semver_env(tag: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    match parse_semver(tag.strip_prefix('v').unwrap_or(tag)) {
        Ok(v) => {
            env.insert("DRONE_SEMVER".into(), v.to_string());
            env.insert("DRONE_SEMVER_MAJOR".into(), v.major.to_string());
            env.insert("DRONE_SEMVER_MINOR".into(), v.minor.to_string());
            env.insert("DRONE_SEMVER_PATCH".into(), v.patch.to_string());
            if !v.pre.is_empty() {
                env.insert("DRONE_SEMVER_PRERELEASE".into(), v.pre.clone());
            }
            if !v.build.is_empty() {
                env.insert("DRONE_SEMVER_BUILD".into(), v.build.clone());
            }
            env.insert(
                "DRONE_SEMVER_SHORT".into(),
                format!("{}.{}.{}", v.major, v.minor, v.patch),
            );
        }
        Err(e) => {
            env.insert("DRONE_SEMVER_ERROR".into(), e);
        }
    }
    env
}

#[derive(Debug, PartialEq)]
struct Semver {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    build: String,
}

impl std::fmt::Display for Semver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

/// A strict `MAJOR.MINOR.PATCH[-pre][+build]` parser (what coreos/go-semver accepts).
fn parse_semver(s: &str) -> Result<Semver, String> {
    let (rest, build) = match s.split_once('+') {
        Some((r, b)) => (r, b.to_string()),
        None => (s, String::new()),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, p.to_string()),
        None => (rest, String::new()),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("{s} is not in dotted-tri format"));
    }
    let num = |p: &str| -> Result<u64, String> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid version number {p:?} in {s}"));
        }
        if p.len() > 1 && p.starts_with('0') {
            return Err(format!("version segment starts with 0: {p}"));
        }
        p.parse::<u64>().map_err(|e| e.to_string())
    };
    let ident_ok = |x: &str| {
        x.split('.')
            .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    if (!pre.is_empty() && !ident_ok(&pre)) || (rest.contains('-') && pre.is_empty()) {
        return Err(format!("invalid prerelease in {s}"));
    }
    if (!build.is_empty() && !ident_ok(&build)) || (s.contains('+') && build.is_empty()) {
        return Err(format!("invalid build metadata in {s}"));
    }
    Ok(Semver {
        major: num(parts[0])?,
        minor: num(parts[1])?,
        patch: num(parts[2])?,
        pre,
        build,
    })
}

/// `DRONE_CALVER*` from a tag like `2024.10.3-rc1` or `v24.10` (runner-go `calver.go`).
fn calver_env(tag: &str) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let s = tag.strip_prefix('v').unwrap_or(tag);
    let parts: Vec<&str> = s.splitn(3, '.').collect();
    if parts.len() < 2 {
        return env;
    }
    let (major, minor) = (parts[0], parts[1]);
    let (mut micro, mut modifier) = (parts.get(2).copied().unwrap_or(""), "");
    if let Some((m, md)) = micro.split_once('-') {
        micro = m;
        modifier = md;
    }
    let (Ok(year), Ok(_)) = (major.parse::<i64>(), minor.parse::<i64>()) else {
        return env;
    };
    if !((19..100).contains(&year) || (2019..9999).contains(&year)) {
        return env;
    }
    let mut short = format!("{major}.{minor}");
    if !micro.is_empty() {
        short.push('.');
        short.push_str(micro);
    }
    let full = if modifier.is_empty() {
        short.clone()
    } else {
        format!("{short}-{modifier}")
    };
    env.insert("DRONE_CALVER".into(), full);
    env.insert(
        "DRONE_CALVER_MAJOR_MINOR".into(),
        format!("{major}.{minor}"),
    );
    env.insert("DRONE_CALVER_MAJOR".into(), major.into());
    env.insert("DRONE_CALVER_MINOR".into(), minor.into());
    env.insert("DRONE_CALVER_MICRO".into(), micro.into());
    if !modifier.is_empty() {
        env.insert("DRONE_CALVER_MODIFIER".into(), modifier.into());
    }
    env.insert("DRONE_CALVER_SHORT".into(), short);
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform() -> Platform {
        Platform {
            os: "linux".into(),
            arch: "amd64".into(),
            variant: None,
            version: None,
        }
    }

    fn push() -> BuildContext {
        BuildContext {
            event: "push".into(),
            branch: "main".into(),
            git_ref: "refs/heads/main".into(),
            sha: "abc123".into(),
            repo_owner: "octo".into(),
            repo_name: "cat".into(),
            system_host: "ci.example.com".into(),
            system_proto: "https".into(),
            build_number: 7,
            ..Default::default()
        }
    }

    #[test]
    fn push_environment() {
        let env = drone_environment(&push(), "build", 2, &platform());
        assert_eq!(env["CI"], "true");
        assert_eq!(env["DRONE_BRANCH"], "main");
        assert_eq!(env["DRONE_COMMIT_BRANCH"], "main");
        assert_eq!(env["DRONE_REPO"], "octo/cat");
        assert_eq!(env["CI_REPO_NAME"], "octo/cat");
        assert_eq!(env["DRONE_REPO_NAME"], "cat");
        assert_eq!(env["DRONE_BUILD_LINK"], "https://ci.example.com/octo/cat/7");
        assert_eq!(env["DRONE_STAGE_NAME"], "build");
        assert_eq!(env["DRONE_STAGE_NUMBER"], "2");
        assert_eq!(env["DRONE_STAGE_OS"], "linux");
        assert!(!env.contains_key("DRONE_TAG"));
        assert!(!env.contains_key("DRONE_PULL_REQUEST"));
    }

    #[test]
    fn pull_request_number_is_first_digits_of_ref() {
        let ctx = BuildContext {
            event: "pull_request".into(),
            git_ref: "refs/pull/42/head".into(),
            target_branch: "main".into(),
            branch: "feature".into(),
            ..push()
        };
        let env = drone_environment(&ctx, "x", 1, &platform());
        assert_eq!(env["DRONE_PULL_REQUEST"], "42");
        assert_eq!(env["DRONE_BRANCH"], "main");
        assert_eq!(env["DRONE_SOURCE_BRANCH"], "feature");
    }

    #[test]
    fn tag_semver_and_calver() {
        let ctx = BuildContext {
            event: "tag".into(),
            git_ref: "refs/tags/v1.2.3-rc.1+build.5".into(),
            ..push()
        };
        let env = drone_environment(&ctx, "x", 1, &platform());
        assert_eq!(env["DRONE_TAG"], "v1.2.3-rc.1+build.5");
        assert_eq!(env["DRONE_SEMVER"], "1.2.3-rc.1+build.5");
        assert_eq!(env["DRONE_SEMVER_MAJOR"], "1");
        assert_eq!(env["DRONE_SEMVER_MINOR"], "2");
        assert_eq!(env["DRONE_SEMVER_PATCH"], "3");
        assert_eq!(env["DRONE_SEMVER_PRERELEASE"], "rc.1");
        assert_eq!(env["DRONE_SEMVER_BUILD"], "build.5");
        assert_eq!(env["DRONE_SEMVER_SHORT"], "1.2.3");
        assert!(!env.contains_key("DRONE_CALVER"), "1 is not a year");

        let cal = BuildContext {
            git_ref: "refs/tags/2024.10.3-beta".into(),
            ..ctx
        };
        let env = drone_environment(&cal, "x", 1, &platform());
        assert_eq!(env["DRONE_CALVER"], "2024.10.3-beta");
        assert_eq!(env["DRONE_CALVER_SHORT"], "2024.10.3");
        assert_eq!(env["DRONE_CALVER_MAJOR_MINOR"], "2024.10");
        assert_eq!(env["DRONE_CALVER_MICRO"], "3");
        assert_eq!(env["DRONE_CALVER_MODIFIER"], "beta");
        assert_eq!(env["DRONE_SEMVER"], "2024.10.3-beta");
    }

    #[test]
    fn bad_semver_sets_error() {
        let ctx = BuildContext {
            event: "tag".into(),
            git_ref: "refs/tags/release-one".into(),
            ..push()
        };
        let env = drone_environment(&ctx, "x", 1, &platform());
        assert!(env.contains_key("DRONE_SEMVER_ERROR"));
        assert!(!env.contains_key("DRONE_SEMVER"));
    }

    #[test]
    fn params_are_included_and_skip_directive() {
        let mut ctx = push();
        ctx.params.insert("IMAGE_TAG".into(), "v9".into());
        ctx.message = "docs: typo [CI SKIP]".into();
        let env = drone_environment(&ctx, "x", 1, &platform());
        assert_eq!(env["IMAGE_TAG"], "v9");
        assert!(skip_requested(&ctx));
        ctx.event = "tag".into();
        assert!(!skip_requested(&ctx));
    }
}
