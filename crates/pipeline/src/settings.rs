//! Plugin `settings:` → `PLUGIN_*` variables, encoded exactly as drone-runner-docker's
//! `internal/encoder` does: the name is `PLUGIN_` + the upper-cased key (no `-`/`.`
//! replacement), scalars are their YAML-resolved value, lists of scalars are comma-joined, maps
//! and lists holding collections become JSON, `null` is skipped, and a top-level
//! `{from_secret: name}` becomes a secret variable.

use crate::yaml::{Node, Value};
use std::collections::BTreeMap;

/// A plain scalar resolved the way yaml.v2 (YAML 1.1) does when decoding into `interface{}`.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

pub fn yaml11_bool(text: &str) -> Option<bool> {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Some(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Some(false)
        }
        _ => None,
    }
}

/// yaml.v2 integer resolution: optional sign, `_` separators, `0x`, `0b`, and a leading `0`
/// meaning octal.
pub fn yaml11_int(text: &str) -> Option<i64> {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let (neg, digits) = match cleaned.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    if digits.is_empty() {
        return None;
    }
    let value = if let Some(h) = digits.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(b) = digits.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if let Some(o) = digits.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else if digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse::<i64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -value } else { value })
}

fn yaml11_float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (a.is_empty() || a.bytes().all(|c| c.is_ascii_digit()))
                && b.bytes().all(|c| c.is_ascii_digit())
                && !(a.is_empty() && b.is_empty())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exp_ok = exp.is_none_or(|e| {
        let d = e.strip_prefix(['-', '+']).unwrap_or(e);
        !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit())
    });
    if mantissa_ok && exp_ok {
        text.parse::<f64>().ok()
    } else {
        None
    }
}

pub fn resolve(node: &Node) -> Typed {
    match &node.value {
        Value::Null => Typed::Null,
        Value::Scalar { text, plain: false } => Typed::Str(text.clone()),
        Value::Scalar { text, plain: true } => {
            if let Some(b) = yaml11_bool(text) {
                Typed::Bool(b)
            } else if let Some(i) = yaml11_int(text) {
                Typed::Int(i)
            } else if let Some(f) = yaml11_float(text) {
                Typed::Float(f)
            } else {
                Typed::Str(text.clone())
            }
        }
        _ => Typed::Null,
    }
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
pub fn go_format_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let sci = format!("{f:e}"); // shortest digits, e.g. "1.5e6"
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

/// Go `encoding/json` number formatting for a float64.
fn go_json_float(f: f64) -> String {
    if !f.is_finite() {
        return "null".into();
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let sci = format!("{f:e}");
        let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    format!("{f}")
}

/// JSON like Go's `json.Marshal` of YAML-decoded data: object keys sorted, HTML-safe escapes.
pub fn to_json(node: &Node, out: &mut String) {
    match &node.value {
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                to_json(item, out);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let mut sorted: Vec<_> = entries.iter().collect();
            sorted.sort_by(|a, b| a.key.cmp(&b.key));
            out.push('{');
            for (i, e) in sorted.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(&e.key, out);
                out.push(':');
                to_json(&e.value, out);
            }
            out.push('}');
        }
        _ => match resolve(node) {
            Typed::Null => out.push_str("null"),
            Typed::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            Typed::Int(i) => out.push_str(&i.to_string()),
            Typed::Float(f) => out.push_str(&go_json_float(f)),
            Typed::Str(s) => json_string(&s, out),
        },
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The value of one setting, or `None` when Drone skips it (null).
pub fn encode_value(node: &Node) -> Option<String> {
    match &node.value {
        Value::Null => None,
        Value::Scalar { .. } => Some(match resolve(node) {
            Typed::Null => return None,
            Typed::Bool(b) => b.to_string(),
            Typed::Int(i) => i.to_string(),
            Typed::Float(f) => go_format_g(f),
            Typed::Str(s) => s,
        }),
        Value::Seq(items) => {
            if items
                .iter()
                .all(|i| matches!(i.value, Value::Null | Value::Scalar { .. }))
            {
                Some(
                    items
                        .iter()
                        .map(|i| i.scalar().unwrap_or(""))
                        .collect::<Vec<_>>()
                        .join(","),
                )
            } else {
                let mut s = String::new();
                to_json(node, &mut s);
                Some(s)
            }
        }
        Value::Map(_) => {
            let mut s = String::new();
            to_json(node, &mut s);
            Some(s)
        }
    }
}

/// The secret a top-level `{from_secret: name}` setting refers to.
pub fn from_secret(node: &Node) -> Option<String> {
    node.get("from_secret")
        .and_then(Node::scalar)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Encode every setting into `env` (plain) and `secrets` (env name → secret name).
pub fn encode_settings(
    settings: &[(String, Node)],
    env: &mut BTreeMap<String, String>,
    secrets: &mut BTreeMap<String, String>,
) {
    for (key, value) in settings {
        let name = format!("PLUGIN_{}", key.to_uppercase());
        if let Some(secret) = from_secret(value) {
            secrets.insert(name, secret);
        } else if let Some(v) = encode_value(value) {
            env.insert(name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{parse_chunk, split_documents};

    fn settings(yaml: &str) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let chunks = split_documents(yaml);
        let root = parse_chunk(&chunks[0]).expect("yaml").expect("some");
        let pairs: Vec<(String, Node)> = root
            .entries()
            .expect("map")
            .iter()
            .map(|e| (e.key.clone(), e.value.clone()))
            .collect();
        let (mut env, mut sec) = (BTreeMap::new(), BTreeMap::new());
        encode_settings(&pairs, &mut env, &mut sec);
        (env, sec)
    }

    #[test]
    fn plugin_encoding_table() {
        let (env, sec) = settings(concat!(
            "repo: octo/app\n",
            "tags: [latest, '1.0', 2]\n",
            "auto-tag: true\n",
            "dry_run: yes\n",
            "build.args: 1\n",
            "mode: 0777\n",
            "ratio: 1.50\n",
            "big: 1000000.0\n",
            "quoted: 'true'\n",
            "skip: ~\n",
            "password:\n  from_secret: docker_password\n",
            "build_args:\n  - A=1\n  - B=2\n",
            "labels:\n  b: 2\n  a: x<y\n",
            "targets:\n  - name: web\n    port: 80\n",
            "nested:\n  token:\n    from_secret: nope\n",
            "multi: |\n  line1\n  line2\n",
        ));
        assert_eq!(env["PLUGIN_REPO"], "octo/app");
        assert_eq!(env["PLUGIN_TAGS"], "latest,1.0,2");
        assert_eq!(env["PLUGIN_AUTO-TAG"], "true");
        assert_eq!(env["PLUGIN_DRY_RUN"], "true");
        assert_eq!(env["PLUGIN_BUILD.ARGS"], "1");
        assert_eq!(env["PLUGIN_MODE"], "511");
        assert_eq!(env["PLUGIN_RATIO"], "1.5");
        assert_eq!(env["PLUGIN_BIG"], "1e+06");
        assert_eq!(env["PLUGIN_QUOTED"], "true");
        assert!(!env.contains_key("PLUGIN_SKIP"));
        assert!(!env.contains_key("PLUGIN_PASSWORD"));
        assert_eq!(sec["PLUGIN_PASSWORD"], "docker_password");
        assert_eq!(env["PLUGIN_BUILD_ARGS"], "A=1,B=2");
        assert_eq!(env["PLUGIN_LABELS"], r#"{"a":"x\u003cy","b":2}"#);
        assert_eq!(env["PLUGIN_TARGETS"], r#"[{"name":"web","port":80}]"#);
        assert_eq!(env["PLUGIN_NESTED"], r#"{"token":{"from_secret":"nope"}}"#);
        assert_eq!(env["PLUGIN_MULTI"], "line1\nline2\n");
    }

    #[test]
    fn go_g_formatting() {
        assert_eq!(go_format_g(1.5), "1.5");
        assert_eq!(go_format_g(0.0001), "0.0001");
        assert_eq!(go_format_g(0.00001), "1e-05");
        assert_eq!(go_format_g(123456789.0), "1.23456789e+08");
        assert_eq!(go_format_g(100000.0), "100000");
        assert_eq!(go_format_g(1e21), "1e+21");
    }

    #[test]
    fn yaml11_scalars() {
        assert_eq!(yaml11_int("0x1F"), Some(31));
        assert_eq!(yaml11_int("1_000"), Some(1000));
        assert_eq!(yaml11_int("-12"), Some(-12));
        assert_eq!(yaml11_int("1.0"), None);
        assert_eq!(yaml11_bool("on"), Some(true));
        assert_eq!(yaml11_bool("N"), Some(false));
        assert_eq!(yaml11_float("1e3"), Some(1000.0));
        assert_eq!(yaml11_float("1.2.3"), None);
    }
}
