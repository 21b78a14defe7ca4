//! The YAML layer: split a `.drone.yml` into documents the way Drone does (by lines, before any
//! YAML parsing, so anchors never cross documents), then turn each document into a small tree
//! that keeps the position of every key and value and the literal text of every scalar.
//!
//! Why not deserialize straight into typed structs: Drone reads environment values as their
//! literal text (`yes` stays `yes`, `1.10` stays `1.10`), unknown keys must be reported with
//! their position and a suggestion, and `skiff lint` has to report every problem rather than the
//! first. The tree gives all three. The untrusted text is first checked by serde-saphyr under a
//! [`serde_saphyr::Budget`] (events, aliases, depth, nodes), and the tree builder enforces its own
//! node cap when expanding aliases, so alias bombs cannot exhaust memory.

use crate::error::Pos;
use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError};
use std::collections::HashMap;

/// Largest pipeline file accepted, in bytes.
pub const MAX_FILE_BYTES: usize = 4 * 1024 * 1024;
/// Largest number of nodes one document may expand to (counting alias copies).
const MAX_NODES: usize = 200_000;
/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;

/// One chunk of the file between `---` lines.
#[derive(Debug, Clone)]
pub struct Chunk<'a> {
    pub text: &'a str,
    /// Line number (1-based) of the chunk's first line in the whole file.
    pub first_line: usize,
}

/// Split like drone/runner-go `manifest/parse.go`: a line starting with `---` starts a new
/// document, a line starting with `...` ends the file.
pub fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1usize;
    let mut offset = 0usize;
    let mut end = text.len();
    for (line_no, line) in (1usize..).zip(text.split_inclusive('\n')) {
        if line.starts_with("...") {
            end = offset;
            break;
        }
        if line.starts_with("---") {
            chunks.push(Chunk {
                text: &text[start..offset],
                first_line: start_line,
            });
            start = offset + line.len();
            start_line = line_no + 1;
        }
        offset += line.len();
    }
    chunks.push(Chunk {
        text: &text[start..end.max(start)],
        first_line: start_line,
    });
    chunks
        .into_iter()
        .filter(|c| {
            c.text
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// A scalar with its text after YAML escapes; `plain` is false for quoted and block scalars,
    /// which are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

impl Node {
    pub fn null(pos: Pos) -> Self {
        Self {
            pos,
            value: Value::Null,
        }
    }

    /// Entries of a mapping, or `None` when this is not a mapping.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(e) => Some(e),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries()?
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }

    /// The scalar's text (`None` for null, sequences and mappings).
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            Value::Null | Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Value::Map(entries) => 1 + entries.iter().map(|e| 1 + e.value.size()).sum::<usize>(),
        }
    }
}

/// Is a plain scalar YAML's null (`~`, `null`, empty)?
fn is_null_text(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

/// A YAML problem with its position in the whole file.
#[derive(Debug, Clone)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// Parse one chunk into a tree. Returns `Ok(None)` for an empty document.
#[cfg(test)]
pub fn parse_chunk(chunk: &Chunk<'_>) -> Result<Option<Node>, YamlError> {
    parse_chunk_with_warnings(chunk).map(|(node, _)| node)
}

/// Like [`parse_chunk`], also returning non-fatal findings (duplicate keys).
pub fn parse_chunk_with_warnings(
    chunk: &Chunk<'_>,
) -> Result<(Option<Node>, Vec<YamlError>), YamlError> {
    budget_check(chunk)?;
    let mut builder = Builder {
        parser: Parser::new_from_str(chunk.text),
        line_offset: chunk.first_line - 1,
        anchors: HashMap::new(),
        nodes: 0,
        last_pos: Pos::new(chunk.first_line, 1),
        warnings: Vec::new(),
    };
    let root = builder.document()?;
    Ok((root, builder.warnings))
}

/// serde-saphyr walks the document once under a budget before we build anything.
fn budget_check(chunk: &Chunk<'_>) -> Result<(), YamlError> {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = 500_000;
    budget.max_aliases = 10_000;
    budget.max_anchors = 10_000;
    budget.max_depth = MAX_DEPTH;
    budget.max_documents = 4;
    budget.max_nodes = MAX_NODES;
    budget.max_total_scalar_bytes = MAX_FILE_BYTES;
    budget.max_merge_keys = 10_000;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    // yaml.v2 (Drone) keeps the last of duplicate keys; the tree builder warns about them.
    options.duplicate_keys = serde_saphyr::options::DuplicateKeyPolicy::LastWins;
    match serde_saphyr::from_str_with_options::<serde::de::IgnoredAny>(chunk.text, options) {
        Ok(_) => Ok(()),
        Err(err) => {
            let pos = err
                .location()
                .map(|l| {
                    Pos::new(
                        usize::try_from(l.line()).unwrap_or(0) + chunk.first_line - 1,
                        usize::try_from(l.column()).unwrap_or(0),
                    )
                })
                .unwrap_or(Pos::new(chunk.first_line, 1));
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid YAML");
            // serde-saphyr prefixes "error: line L column C: " relative to the chunk; our
            // position is absolute, so drop it.
            let message = first
                .strip_prefix("error: line ")
                .and_then(|rest| rest.split_once("column "))
                .and_then(|(_, rest)| rest.split_once(": "))
                .map_or_else(
                    || first.strip_prefix("error: ").unwrap_or(first),
                    |(_, m)| m,
                )
                .to_string();
            Err(YamlError {
                pos,
                message: format!("invalid YAML: {message}"),
            })
        }
    }
}

struct Builder<'a> {
    parser: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    line_offset: usize,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    last_pos: Pos,
    warnings: Vec<YamlError>,
}

enum Step {
    Node(Node),
    End,
    Other,
}

impl<'a> Builder<'a> {
    fn next(&mut self) -> Result<Option<(Event<'a>, Pos)>, YamlError> {
        loop {
            match self.parser.next_event() {
                None => return Ok(None),
                Some(Err(e)) => return Err(self.scan_error(&e)),
                Some(Ok((event, span))) => {
                    let pos = Pos::new(span.start.line() + self.line_offset, span.start.col() + 1);
                    self.last_pos = pos;
                    match event {
                        Event::Anchor(..) => continue,
                        #[allow(unreachable_patterns)]
                        Event::Comment(..) => continue,
                        other => return Ok(Some((other, pos))),
                    }
                }
            }
        }
    }

    fn scan_error(&self, e: &ScanError) -> YamlError {
        let m = e.marker();
        YamlError {
            pos: Pos::new(m.line() + self.line_offset, m.col() + 1),
            message: format!("invalid YAML: {}", e.info()),
        }
    }

    fn err(&self, pos: Pos, message: impl Into<String>) -> YamlError {
        YamlError {
            pos,
            message: message.into(),
        }
    }

    fn document(&mut self) -> Result<Option<Node>, YamlError> {
        let mut root = None;
        while let Some((event, pos)) = self.next()? {
            match event {
                Event::StreamStart | Event::DocumentEnd => {}
                Event::StreamEnd => break,
                Event::DocumentStart(..) => {
                    if root.is_some() {
                        return Err(self.err(pos, "a second YAML document inside one `---` chunk"));
                    }
                    match self.node(0)? {
                        Step::Node(n) => root = Some(n),
                        Step::End => {}
                        Step::Other => return Err(self.err(pos, "unexpected YAML event")),
                    }
                }
                _ => return Err(self.err(pos, "unexpected YAML event")),
            }
        }
        Ok(root.filter(|n| !n.is_null()))
    }

    fn charge(&mut self, n: usize, pos: Pos) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            return Err(self.err(
                pos,
                format!(
                    "document too large: more than {MAX_NODES} YAML nodes (after expanding aliases)"
                ),
            ));
        }
        Ok(())
    }

    /// Read one node; `Step::End` when a collection end was read instead.
    fn node(&mut self, depth: usize) -> Result<Step, YamlError> {
        if depth > MAX_DEPTH {
            return Err(self.err(
                self.last_pos,
                format!("YAML nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let Some((event, pos)) = self.next()? else {
            return Err(self.err(self.last_pos, "unexpected end of YAML"));
        };
        let node = match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.charge(1, pos)?;
                let tagged_str = tag.as_ref().is_some_and(|t| t.to_string().ends_with("str"));
                let plain = matches!(style, ScalarStyle::Plain) && !tagged_str;
                let value = if plain && is_null_text(&text) {
                    Value::Null
                } else {
                    Value::Scalar {
                        text: text.into_owned(),
                        plain,
                    }
                };
                let node = Node { pos, value };
                self.remember(anchor, &node);
                node
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id).cloned() else {
                    return Err(self.err(pos, "alias to an unknown anchor"));
                };
                self.charge(target.size(), pos)?;
                target
            }
            Event::SequenceStart(_, anchor, _) => {
                self.charge(1, pos)?;
                let mut items = Vec::new();
                loop {
                    match self.node(depth + 1)? {
                        Step::Node(n) => items.push(n),
                        Step::End => break,
                        Step::Other => return Err(self.err(pos, "unexpected YAML event in a list")),
                    }
                }
                let node = Node {
                    pos,
                    value: Value::Seq(items),
                };
                self.remember(anchor, &node);
                node
            }
            Event::MappingStart(_, anchor, _) => {
                self.charge(1, pos)?;
                let node = Node {
                    pos,
                    value: Value::Map(self.mapping(depth, pos)?),
                };
                self.remember(anchor, &node);
                node
            }
            Event::SequenceEnd | Event::MappingEnd => return Ok(Step::End),
            _ => return Ok(Step::Other),
        };
        Ok(Step::Node(node))
    }

    /// Read mapping entries up to its end, applying `<<` merge keys: explicit keys win over
    /// merged ones, and earlier merge sources win over later ones (YAML 1.1 merge semantics).
    fn mapping(&mut self, depth: usize, pos: Pos) -> Result<Vec<Entry>, YamlError> {
        let mut entries: Vec<Entry> = Vec::new();
        let mut merged: Vec<Entry> = Vec::new();
        loop {
            let key = match self.node(depth + 1)? {
                Step::End => break,
                Step::Node(k) => k,
                Step::Other => return Err(self.err(pos, "unexpected YAML event in a mapping")),
            };
            let value = match self.node(depth + 1)? {
                Step::Node(v) => v,
                _ => return Err(self.err(key.pos, "mapping key without a value")),
            };
            let (key_text, plain) = match &key.value {
                Value::Scalar { text, plain } => (text.clone(), *plain),
                Value::Null => (String::new(), true),
                _ => return Err(self.err(key.pos, "complex mapping keys are not supported")),
            };
            if plain && key_text == "<<" {
                match &value.value {
                    Value::Map(src) => merged.extend(src.iter().cloned()),
                    Value::Seq(items) => {
                        for item in items {
                            match &item.value {
                                Value::Map(src) => merged.extend(src.iter().cloned()),
                                _ => {
                                    return Err(self.err(
                                        item.pos,
                                        "a `<<` merge list may only hold mappings",
                                    ));
                                }
                            }
                        }
                    }
                    _ => {
                        return Err(
                            self.err(value.pos, "`<<` must merge a mapping or a list of mappings")
                        );
                    }
                }
                continue;
            }
            if let Some(i) = entries.iter().position(|e| e.key == key_text) {
                let first = entries.remove(i);
                self.warnings.push(YamlError {
                    pos: key.pos,
                    message: format!(
                        "duplicate key `{key_text}` (also at line {}); the last one wins, as in Drone",
                        first.key_pos.line
                    ),
                });
            }
            entries.push(Entry {
                key: key_text,
                key_pos: key.pos,
                value,
            });
        }
        for entry in merged {
            if !entries.iter().any(|e| e.key == entry.key) {
                entries.push(entry);
            }
        }
        Ok(entries)
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Node {
        let chunks = split_documents(text);
        parse_chunk(&chunks[0]).expect("parses").expect("non-empty")
    }

    #[test]
    fn splits_on_dash_lines_and_stops_at_dots() {
        let text =
            "kind: pipeline\nname: a\n---\nkind: pipeline\nname: b\n...\nkind: pipeline\nname: c\n";
        let chunks = split_documents(text);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].first_line, 1);
        assert_eq!(chunks[1].first_line, 4);
        assert!(chunks[1].text.contains("name: b"));
    }

    #[test]
    fn leading_separator_and_empty_documents_are_skipped() {
        let chunks = split_documents("---\n# only a comment\n---\nkind: secret\n---\n\n");
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].first_line, 4);
    }

    #[test]
    fn positions_are_absolute_in_the_file() {
        let text = "kind: pipeline\n---\nkind: pipeline\nsteps:\n  - name: x\n";
        let chunks = split_documents(text);
        let node = parse_chunk(&chunks[1]).expect("ok").expect("some");
        let steps = node.get("steps").expect("steps");
        assert_eq!(steps.pos.line, 5);
        let entries = node.entries().expect("map");
        assert_eq!(entries[1].key_pos, Pos::new(4, 1));
    }

    #[test]
    fn scalars_keep_literal_text_and_quoting() {
        let node = parse("a: yes\nb: 1.10\nc: 'true'\nd: ~\ne:\n");
        assert_eq!(node.get("a").and_then(Node::scalar), Some("yes"));
        assert_eq!(node.get("b").and_then(Node::scalar), Some("1.10"));
        assert_eq!(
            node.get("c").map(|n| n.value.clone()),
            Some(Value::Scalar {
                text: "true".into(),
                plain: false
            })
        );
        assert!(node.get("d").is_some_and(Node::is_null));
        assert!(node.get("e").is_some_and(Node::is_null));
    }

    #[test]
    fn anchors_and_merge_keys() {
        let node = parse(
            "base: &base\n  image: golang\n  pull: always\nstep:\n  <<: *base\n  pull: never\n  name: x\n",
        );
        let step = node.get("step").expect("step");
        assert_eq!(step.get("image").and_then(Node::scalar), Some("golang"));
        assert_eq!(step.get("pull").and_then(Node::scalar), Some("never"));
        let keys: Vec<_> = step
            .entries()
            .expect("map")
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(keys, ["pull", "name", "image"]);
    }

    #[test]
    fn merge_list_earlier_wins() {
        let node = parse("a: &a {x: 1}\nb: &b {x: 2, y: 3}\nc:\n  <<: [*a, *b]\n");
        let c = node.get("c").expect("c");
        assert_eq!(c.get("x").and_then(Node::scalar), Some("1"));
        assert_eq!(c.get("y").and_then(Node::scalar), Some("3"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let text = "kind: pipeline\n---\nsteps:\n  - name: a\n   bad: [\n";
        let chunks = split_documents(text);
        let err = parse_chunk(&chunks[1]).expect_err("invalid");
        assert!(err.pos.line >= 3, "{err:?}");
        assert!(err.message.starts_with("invalid YAML"));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let chunks = split_documents(&text);
        assert!(parse_chunk(&chunks[0]).is_err());
    }
}
