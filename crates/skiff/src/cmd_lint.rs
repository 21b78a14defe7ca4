//! `skiff lint FILE...`: check pipeline files and print every problem as
//! `FILE:LINE:COL: error|warning: message`, so editors and CI logs can jump to it. All the rules
//! live in `skiff-pipeline`; this module only reads files and sets the exit code.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Pipeline files to check (default: .drone.yml).
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Lint as a trusted repository: allow privileged steps, host volumes, network_mode, ...
    #[arg(long)]
    pub trusted: bool,
    /// Print only errors, not warnings.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Exit status 1 when any file has an error (or cannot be read), 0 otherwise.
pub fn run(args: LintArgs) -> anyhow::Result<ExitCode> {
    let stdout = std::io::stdout();
    let mut out = QuietOnBrokenPipe {
        inner: stdout.lock(),
        closed: false,
    };
    let failed = lint_files(&args, &mut out)?;
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Stops writing, without an error, once the reader went away (`skiff lint | head`), so the
/// exit status still reflects the files.
struct QuietOnBrokenPipe<W> {
    inner: W,
    closed: bool,
}

impl<W: Write> Write for QuietOnBrokenPipe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.closed {
            return Ok(buf.len());
        }
        match self.inner.write(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(buf.len())
            }
            other => other,
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.inner.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}

/// Lint every file, writing diagnostics to `out`; true when any error was found.
fn lint_files(args: &LintArgs, out: &mut impl Write) -> std::io::Result<bool> {
    let default = [PathBuf::from(".drone.yml")];
    let files = if args.files.is_empty() {
        &default[..]
    } else {
        &args.files[..]
    };
    let opts = skiff_pipeline::PlanOptions {
        trusted: args.trusted,
    };
    let mut failed = false;
    for path in files {
        let name = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                writeln!(out, "{name}:0:0: error: cannot read file: {e}")?;
                failed = true;
                continue;
            }
        };
        for d in skiff_pipeline::lint(&name, &text, &opts) {
            if d.is_error() {
                failed = true;
            } else if args.quiet {
                continue;
            }
            writeln!(out, "{d}")?;
        }
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint_text(text: &str, trusted: bool, quiet: bool) -> (bool, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(".drone.yml");
        std::fs::write(&path, text).expect("write");
        let args = LintArgs {
            files: vec![path.clone()],
            trusted,
            quiet,
        };
        let mut out = Vec::new();
        let failed = lint_files(&args, &mut out).expect("lint");
        let printed = String::from_utf8(out).expect("utf8");
        (failed, printed.replace(&path.display().to_string(), "F"))
    }

    #[test]
    fn prints_every_problem_and_fails_on_errors() {
        let text = "kind: pipeline\nsteps:\n- name: a\n  image: alpine\n  comands: [ls]\n  privileged: true\n  frobnicate: 1\n";
        let (failed, out) = lint_text(text, false, false);
        assert!(failed);
        assert_eq!(
            out,
            "F:5:3: error: unknown key `comands` in a step `a`; did you mean `commands`?\n\
             F:6:3: error: step `a` is privileged, which needs a trusted repository (run with --trusted)\n\
             F:7:3: warning: unknown key `frobnicate` in a step `a` is ignored (as Drone does)\n"
        );
        let (_, quiet) = lint_text(text, true, true);
        assert_eq!(
            quiet,
            "F:5:3: error: unknown key `comands` in a step `a`; did you mean `commands`?\n"
        );
    }

    #[test]
    fn warnings_alone_pass_and_missing_files_fail() {
        let (failed, out) = lint_text(
            "kind: pipeline\nsteps:\n- name: a\n  image: x\n  ports: [80]\n",
            false,
            false,
        );
        assert!(!failed, "{out}");
        assert!(out.contains("warning"));
        let args = LintArgs {
            files: vec![PathBuf::from("/nonexistent/.drone.yml")],
            trusted: false,
            quiet: false,
        };
        let mut out = Vec::new();
        assert!(lint_files(&args, &mut out).expect("lint"));
        assert!(
            String::from_utf8_lossy(&out)
                .starts_with("/nonexistent/.drone.yml:0:0: error: cannot read file")
        );
    }
}
