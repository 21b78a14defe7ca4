//! `when` and `trigger` conditions with Drone's semantics (drone/runner-go `manifest/cond.go`,
//! drone/drone-yaml `yaml/cond.go`): include/exclude lists of globs matched with
//! `bmatcuk/doublestar` v1 rules, where `*` and `?` never cross `/` and `**` does.

use globset::{GlobBuilder, GlobMatcher};

/// One condition: a value matches when no exclude glob matches it and either an include glob
/// matches it or there are no include globs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Condition {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl Condition {
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Drone's `Condition.Match`.
    pub fn matches(&self, value: &str) -> bool {
        if self.exclude.iter().any(|p| glob_match(p, value)) {
            return false;
        }
        if self.include.iter().any(|p| glob_match(p, value)) {
            return true;
        }
        self.include.is_empty()
    }

    /// Any path in `paths` matches (used for `paths` against the changed files).
    fn matches_any_path(&self, paths: &[String]) -> bool {
        if self.is_empty() {
            return true;
        }
        // A change set matches when at least one file is included and not excluded
        // (the meltwater/drone-convert-pathschanged behaviour users rely on).
        paths.iter().any(|p| self.matches(p))
    }
}

/// All conditions of a `when:` or `trigger:` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub action: Condition,
    pub branch: Condition,
    pub cron: Condition,
    pub event: Condition,
    pub instance: Condition,
    pub paths: Condition,
    pub ref_: Condition,
    pub repo: Condition,
    pub status: Condition,
    pub target: Condition,
}

/// The facts about a build that conditions are evaluated against.
#[derive(Debug, Clone, Default)]
pub struct MatchInput<'a> {
    pub action: &'a str,
    /// The build's target branch (Drone's `build.Target`).
    pub branch: &'a str,
    pub cron: &'a str,
    pub event: &'a str,
    pub instance: &'a str,
    pub ref_: &'a str,
    pub repo: &'a str,
    pub target: &'a str,
    /// Changed files; empty means "unknown", and then `paths` is not evaluated.
    pub paths: &'a [String],
}

impl Conditions {
    /// Step-level `when` (runner side): an AND over cron, ref, repo, instance, target, event,
    /// branch and action; plus `paths` when Skiff knows the changed files (Drone ignores it).
    pub fn matches_step(&self, m: &MatchInput<'_>) -> bool {
        self.cron.matches(m.cron)
            && self.ref_.matches(m.ref_)
            && self.repo.matches(m.repo)
            && self.instance.matches(m.instance)
            && self.target.matches(m.target)
            && self.event.matches(m.event)
            && self.branch.matches(m.branch)
            && self.action.matches(m.action)
            && self.paths_match(m.paths)
    }

    /// Pipeline-level `trigger` (server side, D `trigger/trigger.go`): like a step's `when`
    /// except that `instance` is never evaluated by Drone.
    pub fn matches_trigger(&self, m: &MatchInput<'_>) -> bool {
        self.branch.matches(m.branch)
            && self.event.matches(m.event)
            && self.action.matches(m.action)
            && self.ref_.matches(m.ref_)
            && self.repo.matches(m.repo)
            && self.target.matches(m.target)
            && self.cron.matches(m.cron)
            && self.paths_match(m.paths)
    }

    fn paths_match(&self, paths: &[String]) -> bool {
        paths.is_empty() || self.paths.matches_any_path(paths)
    }

    /// `(on_success, on_failure)` of a pipeline from `trigger.status`.
    pub fn trigger_status(&self) -> (bool, bool) {
        if self.status.is_empty() {
            return (true, false);
        }
        (
            self.status.matches("success"),
            self.status.matches("failure"),
        )
    }

    /// The run policy a step's `when.status` asks for.
    pub fn step_status(&self) -> crate::plan::RunPolicy {
        use crate::plan::RunPolicy;
        if self.status.is_empty() {
            return RunPolicy::OnSuccess;
        }
        match (
            self.status.matches("success"),
            self.status.matches("failure"),
        ) {
            (true, true) => RunPolicy::Always,
            (false, true) => RunPolicy::OnFailure,
            _ => RunPolicy::OnSuccess,
        }
    }
}

/// Compile a doublestar-style glob; `None` when the pattern is malformed (doublestar returns an
/// error, which Drone discards, so a malformed pattern never matches).
pub fn compile_glob(pattern: &str) -> Option<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

/// `doublestar.Match(pattern, value)` with errors treated as "no match".
pub fn glob_match(pattern: &str, value: &str) -> bool {
    if pattern == value {
        return true;
    }
    compile_glob(pattern).is_some_and(|m| m.is_match(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(include: &[&str], exclude: &[&str]) -> Condition {
        Condition {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Expectations from bmatcuk/doublestar's `Match` test table and Drone's documentation.
    #[test]
    fn doublestar_table() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "", true),
            ("*", "/", false),
            ("/*", "/", true),
            ("/*", "/debug/", false),
            ("/*", "//", false),
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[!c]", "abc", false),
            ("ab[!b-d]", "abc", false),
            ("ab[!e-g]", "abc", true),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[x-]", "x", true),
            ("[x-]", "-", true),
            ("[x-]", "z", false),
            ("[-x]", "x", true),
            ("[-x]", "-", true),
            ("[-x]", "a", false),
            ("a?b", "acb", true),
            ("a{b,c}d", "abd", true),
            ("a{b,c}d", "acd", true),
            ("a{b,c}d", "aed", false),
            ("**", "", true),
            ("a/**", "a", false),
            ("a/**", "a/b", true),
            ("a/**", "a/b/c", true),
            ("**/c", "c", true),
            ("**/c", "b/c", true),
            ("**/c", "a/b/c", true),
            ("**/c", "a/b", false),
            ("a/**/b", "a/b", true),
            ("a/**/c", "a/b/c", true),
            ("a/**/d", "a/b/c/d", true),
            ("a/**/e", "a/b/c/d", false),
            ("ab{c,d}[", "abcd", false),
            // Drone's documented cases.
            ("feature/*", "feature/x", true),
            ("feature/*", "feature/x/y", false),
            ("refs/tags/*", "refs/tags/v1.0.0", true),
            ("refs/heads/**", "refs/heads/a/b", true),
            ("refs/heads/k??", "refs/heads/k3s", true),
            ("refs/head/master", "refs/heads/master", false),
            ("master", "Master", false),
        ];
        for (pattern, value, want) in table {
            assert_eq!(
                glob_match(pattern, value),
                *want,
                "pattern {pattern:?} value {value:?}"
            );
        }
    }

    #[test]
    fn include_exclude_semantics() {
        assert!(cond(&[], &[]).matches("x"));
        assert!(cond(&["a", "b"], &[]).matches("b"));
        assert!(!cond(&["a"], &[]).matches("b"));
        assert!(!cond(&[], &["b"]).matches("b"));
        assert!(cond(&[], &["b"]).matches("c"));
        assert!(!cond(&["*"], &["dev*"]).matches("develop"));
        assert!(cond(&["release/*"], &["release/old"]).matches("release/new"));
    }

    #[test]
    fn trigger_status_mapping() {
        let mut c = Conditions::default();
        assert_eq!(c.trigger_status(), (true, false));
        c.status = cond(&["failure"], &[]);
        assert_eq!(c.trigger_status(), (false, true));
        c.status = cond(&["success", "failure"], &[]);
        assert_eq!(c.trigger_status(), (true, true));
        c.status = cond(&[], &["success"]);
        assert_eq!(c.trigger_status(), (false, true));
    }

    #[test]
    fn step_status_mapping() {
        use crate::plan::RunPolicy;
        let mut c = Conditions::default();
        assert_eq!(c.step_status(), RunPolicy::OnSuccess);
        c.status = cond(&["success"], &[]);
        assert_eq!(c.step_status(), RunPolicy::OnSuccess);
        c.status = cond(&["failure"], &[]);
        assert_eq!(c.step_status(), RunPolicy::OnFailure);
        c.status = cond(&["failure", "success"], &[]);
        assert_eq!(c.step_status(), RunPolicy::Always);
    }

    #[test]
    fn trigger_ignores_instance_but_when_does_not() {
        let c = Conditions {
            instance: cond(&["ci.example.com"], &[]),
            ..Default::default()
        };
        let m = MatchInput {
            instance: "other.host",
            ..Default::default()
        };
        assert!(c.matches_trigger(&m));
        assert!(!c.matches_step(&m));
    }

    #[test]
    fn paths_only_when_changes_are_known() {
        let c = Conditions {
            paths: cond(&["docs/**"], &["docs/draft/**"]),
            ..Default::default()
        };
        let none: Vec<String> = vec![];
        assert!(c.matches_step(&MatchInput {
            paths: &none,
            ..Default::default()
        }));
        let code = vec!["src/main.rs".to_string()];
        assert!(!c.matches_step(&MatchInput {
            paths: &code,
            ..Default::default()
        }));
        let docs = vec!["src/main.rs".to_string(), "docs/a/b.md".to_string()];
        assert!(c.matches_trigger(&MatchInput {
            paths: &docs,
            ..Default::default()
        }));
        let draft = vec!["docs/draft/x.md".to_string()];
        assert!(!c.matches_trigger(&MatchInput {
            paths: &draft,
            ..Default::default()
        }));
    }
}
