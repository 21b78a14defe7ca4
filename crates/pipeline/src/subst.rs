//! `${...}` substitution over the raw pipeline text, as Drone's runner does it with
//! `drone/envsubst` before parsing YAML. Only braced forms are expanded; `$NAME` is left for the
//! shell, `$$` is an escape for `$`, unknown variables become empty, and a value containing a
//! newline is inserted Go-`%q`-quoted so the YAML stays valid. Anything envsubst cannot parse is
//! an error (Drone fails the stage with "bad substitution").
//!
//! The grammar mirrors envsubst's scanner, including its quirks: a variable name may contain
//! `-` (`${a-b}` is the variable `a-b`), `\\` and `\/` are escapes in text, and `:?`, `:+` act
//! like `:-`.

use crate::error::Error;
use std::collections::BTreeMap;

/// Expand every `${...}` in `text` using `vars`.
pub fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, Error> {
    substitute_mapped(text, vars).map(|(out, _)| out)
}

/// Where each piece of a substituted text came from, so that positions found in the output
/// (YAML errors, lint findings) can be reported at the right column of the original file.
#[derive(Debug, Clone, Default)]
pub struct OffsetMap {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone)]
struct Piece {
    out: usize,
    input: usize,
    in_len: usize,
    /// Plain text (offsets move together) rather than an expanded `${...}`.
    text: bool,
}

impl OffsetMap {
    /// The byte offset in the original text that produced byte `out` of the output.
    pub fn to_input(&self, out: usize) -> usize {
        let idx = self.pieces.partition_point(|p| p.out <= out);
        let Some(p) = idx.checked_sub(1).and_then(|i| self.pieces.get(i)) else {
            return out;
        };
        if p.text {
            p.input + (out - p.out).min(p.in_len)
        } else {
            p.input
        }
    }
}

/// [`substitute`], also returning the map from output offsets back to input offsets.
pub fn substitute_mapped(
    text: &str,
    vars: &BTreeMap<String, String>,
) -> Result<(String, OffsetMap), Error> {
    let mut p = Parser { s: text, i: 0 };
    let nodes = p.parse_text()?;
    let mut out = String::with_capacity(text.len());
    let mut map = OffsetMap::default();
    for (n, start, end) in &nodes {
        map.pieces.push(Piece {
            out: out.len(),
            input: *start,
            in_len: end - start,
            text: matches!(n, Node::Text(_)),
        });
        eval(n, vars, &mut out);
    }
    Ok((out, map))
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Func {
        param: String,
        name: String,
        args: Vec<Node>,
    },
}

struct Parser<'a> {
    s: &'a str,
    i: usize,
}

/// Which characters a text run accepts (envsubst's `accept*` functions).
#[derive(Clone, Copy)]
enum Accept {
    Any,
    NotClosing,
    NotColonClose,
    NotSlash,
}

impl Accept {
    fn ok(self, c: char) -> bool {
        match self {
            Accept::Any => true,
            Accept::NotClosing => c != '}',
            Accept::NotColonClose => c != ':' && c != '}',
            Accept::NotSlash => c != '/',
        }
    }
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn at_lbrack(&self) -> bool {
        self.rest().starts_with("${")
    }

    fn bad(&self, start: usize, reason: &str) -> Error {
        Error::BadSubstitution {
            offset: start,
            reason: reason.to_string(),
        }
    }

    /// Top level: text and functions with their input spans.
    fn parse_text(&mut self) -> Result<Vec<(Node, usize, usize)>, Error> {
        let mut nodes = Vec::new();
        while self.i < self.s.len() {
            let start = self.i;
            let node = if self.at_lbrack() {
                self.parse_func()?
            } else {
                Node::Text(self.run(Accept::Any, true))
            };
            nodes.push((node, start, self.i));
        }
        Ok(nodes)
    }

    /// Scan a run of accepted characters, stopping before `${`. With `escape`, `$$`, `\\` and
    /// `\/` each stand for their second character.
    fn run(&mut self, accept: Accept, escape: bool) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if self.at_lbrack() {
                break;
            }
            if escape {
                let next = self.peek2();
                let escaped = match (c, next) {
                    ('$', Some('$')) => Some('$'),
                    ('\\', Some('/')) => Some('/'),
                    ('\\', Some('\\')) => Some('\\'),
                    _ => None,
                };
                if let Some(e) = escaped {
                    out.push(e);
                    self.i += 2;
                    continue;
                }
            }
            if !accept.ok(c) {
                break;
            }
            out.push(c);
            self.i += c.len_utf8();
        }
        out
    }

    /// A parameter of a function: a nested `${...}` or a non-empty text run.
    fn parse_param(&mut self, accept: Accept, escape: bool, start: usize) -> Result<Node, Error> {
        if self.at_lbrack() {
            return self.parse_func();
        }
        let t = self.run(accept, escape);
        if t.is_empty() {
            return Err(self.bad(start, "missing argument"));
        }
        Ok(Node::Text(t))
    }

    fn expect_rbrack(&mut self, start: usize) -> Result<(), Error> {
        if self.peek() == Some('}') {
            self.i += 1;
            Ok(())
        } else {
            Err(self.bad(start, "expected `}`"))
        }
    }

    /// Take the longest prefix of the rest made of `allowed` characters, at most `max` long.
    fn take_op(&mut self, allowed: &[char], max: usize) -> String {
        let mut op = String::new();
        while op.len() < max {
            match self.peek() {
                Some(c) if allowed.contains(&c) => {
                    op.push(c);
                    self.i += 1;
                }
                _ => break,
            }
        }
        op
    }

    fn parse_func(&mut self) -> Result<Node, Error> {
        let start = self.i;
        self.i += 2; // "${"
        if self.peek() == Some('#') {
            self.i += 1;
            let name = self.ident();
            if name.is_empty() {
                return Err(self.bad(start, "expected a variable name after `${#`"));
            }
            self.expect_rbrack(start)?;
            return Ok(Node::Func {
                param: name,
                name: "#".into(),
                args: vec![],
            });
        }
        let param = self.ident();
        if param.is_empty() {
            return Err(self.bad(start, "expected a variable name"));
        }
        match self.peek() {
            Some(':') => match self.peek2() {
                Some('=' | '-' | '?' | '+') => self.parse_default(param, start),
                _ => self.parse_substr(param, start),
            },
            Some('=') => self.parse_default(param, start),
            Some(',' | '^') => {
                let name = self.take_op(&[',', '^'], 2);
                self.expect_rbrack(start)?;
                Ok(Node::Func {
                    param,
                    name,
                    args: vec![],
                })
            }
            Some('/') => self.parse_replace(param, start),
            Some('#') => {
                let name = self.take_op(&['#'], 2);
                self.parse_remove(param, name, start)
            }
            Some('%') => {
                let name = self.take_op(&['%'], 2);
                self.parse_remove(param, name, start)
            }
            Some('}') => {
                self.i += 1;
                Ok(Node::Func {
                    param,
                    name: String::new(),
                    args: vec![],
                })
            }
            _ => Err(self.bad(start, "unsupported expression")),
        }
    }

    fn ident(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if !is_ident(c) {
                break;
            }
            out.push(c);
            self.i += c.len_utf8();
        }
        out
    }

    fn parse_default(&mut self, param: String, start: usize) -> Result<Node, Error> {
        let name = if self.peek() == Some('=') {
            self.i += 1;
            "=".to_string()
        } else {
            let mut n = String::from(":");
            self.i += 1;
            if let Some(c) = self.peek() {
                n.push(c);
                self.i += c.len_utf8();
            }
            n
        };
        let mut args = Vec::new();
        loop {
            if self.peek() == Some('}') {
                self.i += 1;
                return Ok(Node::Func { param, name, args });
            }
            if self.peek().is_none() {
                return Err(self.bad(start, "unterminated `${`"));
            }
            args.push(self.parse_param(Accept::NotClosing, false, start)?);
        }
    }

    fn parse_substr(&mut self, param: String, start: usize) -> Result<Node, Error> {
        self.i += 1; // ':'
        let mut args = vec![self.parse_param(Accept::NotColonClose, false, start)?];
        match self.peek() {
            Some('}') => {
                self.i += 1;
                return Ok(Node::Func {
                    param,
                    name: ":".into(),
                    args,
                });
            }
            Some(':') => {
                while self.peek() == Some(':') {
                    self.i += 1;
                }
            }
            _ => return Err(self.bad(start, "expected `:` or `}`")),
        }
        args.push(self.parse_param(Accept::NotClosing, false, start)?);
        self.expect_rbrack(start)?;
        Ok(Node::Func {
            param,
            name: ":".into(),
            args,
        })
    }

    fn parse_remove(&mut self, param: String, name: String, start: usize) -> Result<Node, Error> {
        let args = vec![self.parse_param(Accept::NotClosing, false, start)?];
        self.expect_rbrack(start)?;
        Ok(Node::Func { param, name, args })
    }

    fn parse_replace(&mut self, param: String, start: usize) -> Result<Node, Error> {
        self.i += 1; // '/'
        let mut name = String::from("/");
        if let Some(c @ ('/' | '#' | '%')) = self.peek() {
            name.push(c);
            self.i += 1;
        }
        let mut args = vec![self.parse_param(Accept::NotSlash, true, start)?];
        if self.peek() != Some('/') {
            return Err(self.bad(start, "expected `/` in a replacement"));
        }
        while self.peek() == Some('/') {
            self.i += 1;
        }
        if self.peek() == Some('}') {
            self.i += 1;
            return Ok(Node::Func { param, name, args });
        }
        args.push(self.parse_param(Accept::NotClosing, true, start)?);
        self.expect_rbrack(start)?;
        Ok(Node::Func { param, name, args })
    }
}

fn eval(node: &Node, vars: &BTreeMap<String, String>, out: &mut String) {
    match node {
        Node::Text(t) => out.push_str(t),
        Node::Func { param, name, args } => {
            let args: Vec<String> = args
                .iter()
                .map(|a| {
                    let mut s = String::new();
                    eval(a, vars, &mut s);
                    s
                })
                .collect();
            let raw = vars.get(param).map(String::as_str).unwrap_or("");
            let value = if raw.contains('\n') {
                go_quote(raw)
            } else {
                raw.to_string()
            };
            out.push_str(&apply(name, &value, &args));
        }
    }
}

fn apply(name: &str, s: &str, args: &[String]) -> String {
    match name {
        "," => first_char(s, false),
        ",," => s.to_lowercase(),
        "^" => first_char(s, true),
        "^^" => s.to_uppercase(),
        "#" if args.is_empty() => s.len().to_string(),
        "#" => trim_shortest(s, &args[0]),
        "##" => trim_longest(s, &args[0]),
        "%" => reverse(&trim_shortest(&reverse(s), &reverse(&args[0]))),
        "%%" => reverse(&trim_longest(&reverse(s), &reverse(&args[0]))),
        ":" => substr(s, args),
        "/#" => match args {
            [from, to] if s.starts_with(from.as_str()) => s.replacen(from.as_str(), to, 1),
            _ => s.to_string(),
        },
        "/%" => match args {
            [from, to] if s.ends_with(from.as_str()) => {
                format!("{}{}", &s[..s.len() - from.len()], to)
            }
            _ => s.to_string(),
        },
        "/" => match args {
            [] => s.to_string(),
            [from] => s.replacen(from.as_str(), "", 1),
            [from, to, ..] => s.replacen(from.as_str(), to, 1),
        },
        "//" => match args {
            [] => s.to_string(),
            [from] => s.replace(from.as_str(), ""),
            [from, to, ..] => s.replace(from.as_str(), to),
        },
        // "", "=", ":=", ":-", ":?", ":+" and anything else: the default function.
        _ => {
            if s.is_empty() && !args.is_empty() {
                args.concat()
            } else {
                s.to_string()
            }
        }
    }
}

fn first_char(s: &str, upper: bool) -> String {
    let mut chars = s.chars();
    match chars.next() {
        None => String::new(),
        Some(c) => {
            let head: String = if upper {
                c.to_uppercase().collect()
            } else {
                c.to_lowercase().collect()
            };
            head + chars.as_str()
        }
    }
}

/// `${s:pos}` / `${s:pos:len}` on bytes, like Go's slicing in envsubst's `toSubstr`.
fn substr(s: &str, args: &[String]) -> String {
    let b = s.as_bytes();
    let Some(Ok(mut pos)) = args.first().map(|a| a.parse::<i64>()) else {
        return s.to_string();
    };
    let len = b.len() as i64;
    if pos < 0 {
        pos = (len + pos).max(0);
    }
    let slice = |from: i64, to: i64| -> String {
        let from = usize::try_from(from.clamp(0, len)).unwrap_or(0);
        let to = usize::try_from(to.clamp(0, len)).unwrap_or(0);
        String::from_utf8_lossy(&b[from..to.max(from)]).into_owned()
    };
    match args.get(1) {
        None => {
            if pos < len {
                slice(pos, len)
            } else {
                String::new()
            }
        }
        Some(l) => match l.parse::<i64>() {
            Err(_) => s.to_string(),
            Ok(n) if pos + n >= len => slice(pos, len),
            Ok(n) => slice(pos, pos + n),
        },
    }
}

fn reverse(s: &str) -> String {
    s.chars().rev().collect()
}

/// Character boundaries of `s` from longest prefix to shortest non-empty one.
fn prefixes(s: &str) -> impl Iterator<Item = &str> {
    let mut ends: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(1).collect();
    ends.push(s.len());
    ends.into_iter().rev().map(move |e| &s[..e])
}

fn trim_shortest(s: &str, pattern: &str) -> String {
    let mut shortest: Option<&str> = None;
    for p in prefixes(s) {
        match shell_match(pattern, p) {
            None => return s.to_string(),
            Some(true) => shortest = Some(p),
            Some(false) => {}
        }
    }
    match shortest {
        Some(p) => s[p.len()..].to_string(),
        None => s.to_string(),
    }
}

fn trim_longest(s: &str, pattern: &str) -> String {
    for p in prefixes(s) {
        match shell_match(pattern, p) {
            None => return s.to_string(),
            Some(true) => return s[p.len()..].to_string(),
            Some(false) => {}
        }
    }
    s.to_string()
}

/// envsubst's pattern match for `#`/`%`: `*` matches any run (including `/`), `?` one
/// character, `[...]` a class, `\` escapes. `None` for a malformed pattern.
fn shell_match(pattern: &str, name: &str) -> Option<bool> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> Option<bool> {
    let Some((&first, rest)) = p.split_first() else {
        return Some(n.is_empty());
    };
    match first {
        '*' => {
            for skip in 0..=n.len() {
                if match_from(rest, &n[skip..])? {
                    return Some(true);
                }
            }
            Some(false)
        }
        '?' => match n.split_first() {
            Some((_, nrest)) => match_from(rest, nrest),
            None => Some(false),
        },
        '[' => {
            let close = rest.iter().skip(1).position(|&c| c == ']').map(|i| i + 1)?;
            let class = &rest[..close];
            let after = &rest[close + 1..];
            let Some((&c, nrest)) = n.split_first() else {
                return Some(false);
            };
            let (negate, items) = match class.first() {
                Some('^' | '!') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut k = 0;
            while k < items.len() {
                if k + 2 < items.len() && items[k + 1] == '-' {
                    if items[k] <= c && c <= items[k + 2] {
                        hit = true;
                    }
                    k += 3;
                } else {
                    if items[k] == c {
                        hit = true;
                    }
                    k += 1;
                }
            }
            if hit != negate {
                match_from(after, nrest)
            } else {
                Some(false)
            }
        }
        '\\' => {
            let (&lit, prest) = rest.split_first()?;
            match n.split_first() {
                Some((&c, nrest)) if c == lit => match_from(prest, nrest),
                _ => Some(false),
            }
        }
        lit => match n.split_first() {
            Some((&c, nrest)) if c == lit => match_from(rest, nrest),
            _ => Some(false),
        },
    }
}

/// Go's `strconv.Quote` (Drone quotes substituted values holding newlines with it, and the
/// runner's trace lines with `%q`): a double-quoted string with `\"`, `\\`, the C escapes, and `\x`/`\u`
/// escapes for what Go does not consider printable. Non-ASCII printability is approximated
/// with Rust's `is_control`/`is_whitespace` (Go's table is slightly larger).
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            ' ' => out.push(' '),
            c if c.is_ascii() && (c.is_ascii_control()) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if !c.is_ascii() && (c.is_control() || c.is_whitespace()) => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The cases of drone/envsubst's `eval_test.go` (sourced there from tldp.org).
    #[test]
    fn envsubst_eval_table() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let table: &[Case<'_>] = &[
            (&[], "abcdEFGH28ij", "abcdEFGH28ij"),
            (&[("var01", "abcdEFGH28ij")], "${#var01}", "12"),
            (&[("var01", "abcdEFGH28ij")], "${var01^}", "AbcdEFGH28ij"),
            (&[("var01", "abcdEFGH28ij")], "${var01^^}", "ABCDEFGH28IJ"),
            (&[("var01", "ABCDEFGH28IJ")], "${var01,}", "aBCDEFGH28IJ"),
            (&[("var01", "ABCDEFGH28IJ")], "${var01,,}", "abcdefgh28ij"),
            (
                &[("path_name", "/home/bozo/ideas/thoughts.for.today")],
                "${path_name:11}",
                "ideas/thoughts.for.today",
            ),
            (
                &[("path_name", "/home/bozo/ideas/thoughts.for.today")],
                "${path_name:11:5}",
                "ideas",
            ),
            (&[("var", "abc")], "${var=abc}", "abc"),
            (&[], "${var=xyz}", "xyz"),
            (
                &[("default_var", "foo")],
                "something ${var=${default_var}}",
                "something foo",
            ),
            (
                &[("default_var", "foo1")],
                "foo: ${var=${default_var}-suffix}",
                "foo: foo1-suffix",
            ),
            (
                &[("default_var", "foo1")],
                "foo: ${var=prefix${default_var}-suffix}",
                "foo: prefixfoo1-suffix",
            ),
            (&[], "${var:=xyz}", "xyz"),
            (
                &[("stringZ", "abcABC123ABCabc")],
                "${stringZ/%abc/XYZ}",
                "abcABC123ABCXYZ",
            ),
            (
                &[("stringZ", "abcABC123ABCabc")],
                "${stringZ/#abc/XYZ}",
                "XYZABC123ABCabc",
            ),
            (
                &[("stringZ", "abcABC123ABCabc")],
                "${stringZ//abc/xyz}",
                "xyzABC123ABCxyz",
            ),
            (
                &[("stringZ", "abcABC123ABCabc")],
                "${stringZ/abc/xyz}",
                "xyzABC123ABCabc",
            ),
            (
                &[("filename", "bash.string.txt")],
                "${filename#*.}",
                "string.txt",
            ),
            (&[("filename", "path/to/file")], "${filename#*/}", "to/file"),
            (
                &[("filename", "/path/to/file")],
                "${filename#*/}",
                "path/to/file",
            ),
            (&[("filename", "bash.string.txt")], "${filename##*.}", "txt"),
            (&[("filename", "path/to/file")], "${filename##*/}", "file"),
            (&[("filename", "/path/to/file")], "${filename##*/}", "file"),
            (
                &[("filename", "bash.string.txt")],
                "${filename%.*}",
                "bash.string",
            ),
            (
                &[("filename", "bash.string.txt")],
                "${filename%%.*}",
                "bash",
            ),
            (
                &[("var01", "abcdEFGH28ij")],
                "${var=${var01^^}}",
                "ABCDEFGH28IJ",
            ),
            (&[("var01", "abcdEFGH28ij")], "$${var01}", "${var01}"),
            (
                &[("var01", "abcdEFGH28ij")],
                "some text ${var01}$${var$${var01}$var01${var01}",
                "some text abcdEFGH28ij${var${var01}$var01abcdEFGH28ij",
            ),
            (
                &[("default_var", "foo")],
                "something $${var=${default_var}}",
                "something ${var=foo}",
            ),
            (&[("stringZ", "foo/bar")], r"${stringZ/\//-}", "foo-bar"),
            (
                &[("stringZ", "foo/bar/baz")],
                r"${stringZ//\//-}",
                "foo-bar-baz",
            ),
            (&[("stringZ", "foo.bar")], "${stringZ/./}", "foobar"),
        ];
        for (params, input, want) in table {
            let got = substitute(input, &vars(params)).expect(input);
            assert_eq!(&got, want, "input {input:?}");
        }
    }

    /// Shapes from drone/envsubst's `parse/parse_test.go`, checked through evaluation.
    #[test]
    fn envsubst_parse_shapes() {
        let v = vars(&[
            ("string", "hello/world"),
            ("string_A", "A"),
            ("string_A-b", "dash"),
            ("position", "2"),
            ("stringy", "/"),
            ("stringz", "_"),
        ]);
        let table: &[(&str, &str)] = &[
            ("text", "text"),
            ("}text", "}text"),
            ("http://github.com", "http://github.com"),
            ("$${string}", "${string}"),
            ("$$string", "$string"),
            ("${string_A}", "A"),
            ("${string_A-b}", "dash"),
            ("${string:position}", "hello/world"),
            ("${string:position:length}", "hello/world"),
            ("${string#$%:*{}", "hello/world"),
            ("hello ${#string} world", "hello 11 world"),
            (r"${string/\/world/length}", "hellolength"),
            ("${string:${position}}", "llo/world"),
            ("${string#${stringz}}", "hello/world"),
            ("${string=${stringz}}", "hello/world"),
            ("${string//${stringy}/${stringz}}", "hello_world"),
            ("${string:?default}", "hello/world"),
            ("${unset:+default}", "default"),
            ("${unset:-x${string_A}y}", "xAy"),
            ("$HOME and ${unset}.", "$HOME and ."),
        ];
        for (input, want) in table {
            assert_eq!(
                &substitute(input, &v).expect(input),
                want,
                "input {input:?}"
            );
        }
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for bad in [
            "${", "${}", "${ x}", "${x", "${x:}", "${#}", "${x#}", "${!x}", "a ${@}", "${x/a}",
            "${x[0]}",
        ] {
            assert!(
                substitute(bad, &BTreeMap::new()).is_err(),
                "{bad:?} should fail"
            );
        }
        let err = substitute("ok\n  ${!x}", &BTreeMap::new()).expect_err("bad");
        assert_eq!(
            err,
            Error::BadSubstitution {
                offset: 5,
                reason: "expected a variable name".into()
            }
        );
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(go_quote("a\"b"), "\"a\\\"b\"");
        assert_eq!(go_quote("a\\b"), "\"a\\\\b\"");
        assert_eq!(go_quote("l1\nl2\tx"), "\"l1\\nl2\\tx\"");
        assert_eq!(go_quote("\u{1b}[0m"), "\"\\x1b[0m\"");
        assert_eq!(go_quote("\u{7f}"), "\"\\x7f\"");
        assert_eq!(go_quote("héllo ✓"), "\"héllo ✓\"");
        assert_eq!(go_quote("a\u{a0}b"), "\"a\\u00a0b\"");
        assert_eq!(go_quote("'single'"), "\"'single'\"");
    }

    #[test]
    fn newline_values_are_go_quoted() {
        let v = vars(&[("MSG", "line one\nsaid \"hi\"\t")]);
        assert_eq!(
            substitute("m: ${MSG}", &v).expect("ok"),
            r#"m: "line one\nsaid \"hi\"\t""#
        );
    }

    #[test]
    fn substring_edges() {
        let v = vars(&[("S", "abcdef")]);
        assert_eq!(substitute("${S:-2}", &v).expect("ok"), "abcdef"); // default, not substring
        assert_eq!(substitute("${S:0:8}", &v).expect("ok"), "abcdef");
        assert_eq!(substitute("${S:10}", &v).expect("ok"), "");
        assert_eq!(substitute("${S:x}", &v).expect("ok"), "abcdef");
        let sha = vars(&[("DRONE_COMMIT_SHA", "0123456789abcdef")]);
        assert_eq!(
            substitute("${DRONE_COMMIT_SHA:0:8}", &sha).expect("ok"),
            "01234567"
        );
    }

    #[test]
    fn offsets_map_back_to_the_input() {
        let v = vars(&[("LONG", "a-much-longer-value"), ("E", "")]);
        let input = "x: ${LONG} y ${E}z $$w";
        let (out, map) = substitute_mapped(input, &v).expect("ok");
        assert_eq!(out, "x: a-much-longer-value y z $w");
        let y_out = out.find(" y").expect("y");
        assert_eq!(&input[map.to_input(y_out)..map.to_input(y_out) + 2], " y");
        let z_out = out.find('z').expect("z");
        assert_eq!(&input[map.to_input(z_out)..=map.to_input(z_out)], "z");
        // Inside an expansion, positions point at its `${`.
        assert_eq!(map.to_input(5), input.find("${LONG}").expect("var"));
    }

    #[test]
    fn backslash_escapes_in_text() {
        assert_eq!(
            substitute(r"a\\b \/ \n", &BTreeMap::new()).expect("ok"),
            r"a\b / \n"
        );
    }
}
