//! Secret masking for logs, as Drone does it (ci.md §2.12): every secret value is split on
//! newlines, each part trimmed, parts shorter than 2 characters ignored, and every remaining
//! part replaced by `******`. Unlike Drone, masking runs on complete lines (see
//! [`LineSplitter`]) so a secret written in two chunks cannot leak.

use std::borrow::Cow;

/// What a secret is replaced with (Drone's six asterisks).
pub const MASK: &str = "******";

/// Longest partial line kept before it is emitted anyway, so a process that never writes a
/// newline cannot grow memory without bound.
const MAX_PENDING: usize = 64 * 1024;

/// Replaces secret values in text. Cheap to share behind an `Arc`.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    /// The parts to hide, longest first so a secret containing another is hidden whole.
    needles: Vec<String>,
}

impl Masker {
    /// A masker for these secret values.
    pub fn new<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut needles: Vec<String> = secrets
            .into_iter()
            .flat_map(|secret| {
                secret
                    .as_ref()
                    .split('\n')
                    .map(|part| part.trim().to_string())
                    .filter(|part| part.chars().count() >= 2)
                    .collect::<Vec<_>>()
            })
            .collect();
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Masker { needles }
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every secret replaced by [`MASK`].
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if !self.needles.iter().any(|n| text.contains(n.as_str())) {
            return Cow::Borrowed(text);
        }
        // Scan left to right; at each position the longest matching secret wins.
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        'scan: while !rest.is_empty() {
            for needle in &self.needles {
                if rest.starts_with(needle.as_str()) {
                    out.push_str(MASK);
                    rest = &rest[needle.len()..];
                    continue 'scan;
                }
            }
            let mut chars = rest.chars();
            if let Some(c) = chars.next() {
                out.push(c);
            }
            rest = chars.as_str();
        }
        Cow::Owned(out)
    }
}

/// Reassembles output chunks into complete lines. Docker and pipes deliver output in arbitrary
/// pieces; masking whole lines is what makes masking reliable.
#[derive(Debug, Default)]
pub struct LineSplitter {
    pending: Vec<u8>,
}

impl LineSplitter {
    /// Feeds a chunk; calls `emit` with each completed line (without its `\n`).
    pub fn push(&mut self, chunk: &[u8], mut emit: impl FnMut(&str)) {
        let mut rest = chunk;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            self.pending.extend_from_slice(&rest[..pos]);
            Self::emit_pending(&mut self.pending, &mut emit);
            rest = &rest[pos + 1..];
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() > MAX_PENDING {
            Self::emit_pending(&mut self.pending, &mut emit);
        }
    }

    /// Emits what is left once the stream has ended.
    pub fn finish(&mut self, mut emit: impl FnMut(&str)) {
        if !self.pending.is_empty() {
            Self::emit_pending(&mut self.pending, &mut emit);
        }
    }

    fn emit_pending(pending: &mut Vec<u8>, emit: &mut impl FnMut(&str)) {
        if pending.last() == Some(&b'\r') {
            pending.pop();
        }
        let line = String::from_utf8_lossy(pending);
        emit(&line);
        pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_every_occurrence() {
        let masker = Masker::new(["hunter2"]);
        assert_eq!(
            masker.mask("pw=hunter2 again hunter2"),
            "pw=****** again ******"
        );
    }

    #[test]
    fn leaves_clean_lines_borrowed() {
        let masker = Masker::new(["hunter2"]);
        assert!(matches!(masker.mask("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn splits_multiline_secrets_and_trims_parts() {
        let masker = Masker::new(["  line-one  \nline-two\nx\n"]);
        assert_eq!(masker.mask("a line-one b"), "a ****** b");
        assert_eq!(masker.mask("line-two"), "******");
        // Parts shorter than two characters are not masked, as in Drone.
        assert_eq!(masker.mask("x marks"), "x marks");
    }

    #[test]
    fn longest_secret_wins() {
        let masker = Masker::new(["abc", "abcdef"]);
        assert_eq!(masker.mask("xabcdefx abc"), "x******x ******");
    }

    #[test]
    fn empty_and_short_secrets_are_ignored() {
        let masker = Masker::new(["", "a", " "]);
        assert!(masker.is_empty());
        assert_eq!(masker.mask("a b"), "a b");
    }

    #[test]
    fn unicode_text_survives() {
        let masker = Masker::new(["sécret"]);
        assert_eq!(masker.mask("ü sécret ✓"), "ü ****** ✓");
    }

    #[test]
    fn splitter_joins_chunks_so_split_secrets_are_masked() {
        let masker = Masker::new(["topsecret"]);
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        for chunk in [&b"value: top"[..], b"secret\nnext", b" line\r\n", b"tail"] {
            splitter.push(chunk, |line| lines.push(masker.mask(line).into_owned()));
        }
        splitter.finish(|line| lines.push(masker.mask(line).into_owned()));
        assert_eq!(lines, ["value: ******", "next line", "tail"]);
    }

    #[test]
    fn splitter_emits_empty_lines() {
        let mut splitter = LineSplitter::default();
        let mut lines = Vec::new();
        splitter.push(b"a\n\nb\n", |line| lines.push(line.to_string()));
        splitter.finish(|line| lines.push(line.to_string()));
        assert_eq!(lines, ["a", "", "b"]);
    }
}
