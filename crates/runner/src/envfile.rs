//! `KEY=VALUE` files for `--secret-file` and `--env-file`, read the way `drone exec` reads
//! them (godotenv-style): blank lines and `#` comments skipped, an optional `export ` prefix,
//! values optionally wrapped in single or double quotes (`\n` escapes in double quotes).

use crate::RunnerError;
use std::collections::BTreeMap;
use std::path::Path;

/// Reads and parses the file at `path`.
pub fn read(path: &Path) -> Result<BTreeMap<String, String>, RunnerError> {
    let text = std::fs::read_to_string(path).map_err(|source| RunnerError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses `text`; `path` is only used in error messages.
pub fn parse(path: &Path, text: &str) -> Result<BTreeMap<String, String>, RunnerError> {
    let mut out = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((key, value)) = line.split_once('=') else {
            return Err(RunnerError::EnvFile {
                path: path.to_path_buf(),
                line: index + 1,
                message: "expected KEY=VALUE".into(),
            });
        };
        let key = key.trim();
        let valid = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        if !valid {
            return Err(RunnerError::EnvFile {
                path: path.to_path_buf(),
                line: index + 1,
                message: format!("`{key}` is not a valid name"),
            });
        }
        out.insert(key.to_string(), unquote(value.trim()));
    }
    Ok(out)
}

fn unquote(value: &str) -> String {
    if value.len() >= 2 && value.starts_with('"') && value.ends_with('"') {
        let inner = &value[1..value.len() - 1];
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                match chars.next() {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some(other) => out.push(other),
                    None => out.push('\\'),
                }
            } else {
                out.push(c);
            }
        }
        out
    } else if value.len() >= 2 && value.starts_with('\'') && value.ends_with('\'') {
        value[1..value.len() - 1].to_string()
    } else {
        // An unquoted value ends at an inline comment.
        match value.find(" #") {
            Some(pos) => value[..pos].trim_end().to_string(),
            None => value.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let text =
            "# comment\n\nA=1\nexport B = two words\nC=\"x\\ny\"\nD='$raw'\nE=v # note\nF=\n";
        let map = parse(Path::new("f"), text).expect("valid");
        assert_eq!(map["A"], "1");
        assert_eq!(map["B"], "two words");
        assert_eq!(map["C"], "x\ny");
        assert_eq!(map["D"], "$raw");
        assert_eq!(map["E"], "v");
        assert_eq!(map["F"], "");
    }

    #[test]
    fn reports_bad_lines_with_their_number() {
        let err = parse(Path::new("secrets.env"), "A=1\nnot a pair\n").expect_err("bad");
        assert_eq!(err.to_string(), "secrets.env:2: expected KEY=VALUE");
    }
}
