//! Diagnostics and the crate's error type. A `.drone.yml` is user input: every problem found in
//! it becomes a [`Diagnostic`] that names the file, line and column, so that `skiff lint` and a
//! failed build can point at the exact spot instead of reporting only the first failure.

use std::fmt;

/// How bad a finding is: errors stop a build, warnings are shown and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding in a pipeline file. Lines and columns are 1-based; 0 means "the whole file".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn error(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(file, pos, Severity::Error, message)
    }

    pub fn warning(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(file, pos, Severity::Warning, message)
    }

    fn new(file: &str, pos: Pos, severity: Severity, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            severity,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.severity, self.message
        )
    }
}

/// A set of diagnostics returned when a file cannot be planned; it holds at least one error.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter().filter(|d| d.is_error())
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// A position in the original file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub const fn new(line: usize, column: usize) -> Self {
        Self { line, column }
    }
}

/// Failures of the stand-alone helpers ([`crate::substitute`]); file problems are
/// [`Diagnostics`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// `${...}` that drone/envsubst cannot parse; Drone fails the stage with this.
    #[error(
        "bad substitution at byte {offset}: {reason} (only ${{NAME}} forms are substituted; write $${{...}} for a literal)"
    )]
    BadSubstitution { offset: usize, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_formats() {
        let e = Diagnostic::error("a.yml", Pos::new(3, 7), "bad thing");
        let w = Diagnostic::warning("a.yml", Pos::new(9, 1), "odd thing");
        assert_eq!(e.to_string(), "a.yml:3:7: error: bad thing");
        let all = Diagnostics(vec![e.clone(), w]);
        assert_eq!(
            all.to_string(),
            "a.yml:3:7: error: bad thing\na.yml:9:1: warning: odd thing"
        );
        assert!(all.has_errors());
        assert_eq!(all.errors().count(), 1);
        let boxed: Box<dyn std::error::Error> = Box::new(all);
        assert!(boxed.to_string().starts_with("a.yml:3:7"));
    }
}
