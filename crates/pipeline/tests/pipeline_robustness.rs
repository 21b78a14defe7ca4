//! The pipeline file is untrusted input: whatever bytes arrive, `lint` and `plan_build` must
//! return diagnostics, never panic, and stay within their budgets. These tests feed them
//! truncated and mutated copies of the corpus and a few hostile documents.

use skiff_pipeline::{BuildContext, PlanOptions, lint, plan_build};
use std::path::PathBuf;

fn corpus_texts() -> Vec<String> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("corpus")
        .filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect();
    out.sort();
    out
}

fn ctx() -> BuildContext {
    BuildContext {
        event: "push".into(),
        branch: "main".into(),
        git_ref: "refs/heads/main".into(),
        ..Default::default()
    }
}

/// Run both entry points; any error must come with positions inside the text.
fn exercise(text: &str) {
    let lines = text.lines().count() + 1;
    for d in lint("f.yml", text, &PlanOptions::default()) {
        assert!(
            d.line <= lines,
            "diagnostic past the end: {d} ({lines} lines)"
        );
    }
    if let Err(e) = plan_build("f.yml", text, &ctx(), &PlanOptions { trusted: true }) {
        assert!(e.has_errors(), "an Err must hold at least one error");
    }
}

#[test]
fn truncated_corpus_files_never_panic() {
    for text in corpus_texts() {
        // Six cuts per file, spread over it, each at a line end.
        let ends: Vec<usize> = text.match_indices('\n').map(|(i, _)| i).collect();
        let cuts: Vec<usize> = (1..=6)
            .filter_map(|k| ends.get(ends.len() * k / 7).copied())
            .collect();
        for cut in cuts {
            exercise(&text[..cut]);
        }
    }
}

#[test]
fn mutated_corpus_files_never_panic() {
    // A small deterministic generator: no randomness between runs.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let noise = [
        ":", "-", " ", "\t", "&a", "*a", "<<", "${", "}", "[", "{", "'", "\"", "\n", "---\n",
        "!!str ",
    ];
    for text in corpus_texts() {
        for _ in 0..4 {
            let mut bytes: Vec<char> = text.chars().collect();
            for _ in 0..4 {
                let at = (next() as usize) % bytes.len().max(1);
                let piece = noise[(next() as usize) % noise.len()];
                bytes.splice(at..at, piece.chars());
            }
            let mutated: String = bytes.into_iter().collect();
            exercise(&mutated);
        }
    }
}

#[test]
fn hostile_documents_are_refused_with_diagnostics() {
    // Deep nesting.
    let deep = format!(
        "kind: pipeline\nsteps: {}{}\n",
        "[".repeat(200),
        "]".repeat(200)
    );
    let d = lint("f", &deep, &PlanOptions::default());
    assert!(d.iter().any(|d| d.is_error()), "{d:?}");
    // An alias bomb: 10 levels of 10 aliases each.
    let mut bomb = String::from("kind: pipeline\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "x{i}: &x{i} [*x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}, *x{p}]\n"
        ));
    }
    bomb.push_str("steps: []\n");
    let d = lint("f", &bomb, &PlanOptions::default());
    assert!(d.iter().any(|d| d.is_error()), "{d:?}");
    // A huge file.
    let huge = format!(
        "kind: pipeline\nsteps: []\n#{}\n",
        "x".repeat(5 * 1024 * 1024)
    );
    let d = lint("f", &huge, &PlanOptions::default());
    assert!(
        d.iter()
            .any(|d| d.is_error() && d.message.contains("larger than")),
        "{d:?}"
    );
    // Binary garbage and odd encodings.
    for text in [
        "\u{0}\u{1}\u{2}",
        "\u{feff}kind: pipeline\nsteps: []\n",
        "%YAML 1.2\n---\nkind: pipeline\n",
        "? [a, b]\n: c\n",
        "kind: !!binary aGk=\n",
    ] {
        exercise(text);
    }
}
