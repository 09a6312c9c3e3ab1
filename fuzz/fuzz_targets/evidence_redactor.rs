//! The evidence redactor on any body a target may send: no signed token and
//! no known secret survives it, whatever the body's shape or bytes.
//!
//! Checked on the redacted strings themselves, not on their JSON text: an
//! escape such as `\u001f` followed by `uzz…` spells the secret in the text
//! without the string holding it.
#![no_main]

use fourleg_core::{jwt, Secret};
use fourleg_target::evidence::{self, Redactor};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const SECRET: &str = "fuzz-client-secret-0123456789";

fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out);
        }),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let body = evidence::body_value(data, false);
    let redactor = Redactor::default();
    redactor.learn(&Secret::new(SECRET), "secret of agent");
    redactor.learn_tokens(&body);
    let (red, _tokens) = evidence::redact_body(&body);
    let mut out = Vec::new();
    strings(&redactor.scrub_value(&red), &mut out);
    for s in &out {
        assert!(jwt::find_signed_jwts(s).is_empty(), "a signed token survived: {s:?}");
        assert!(!s.contains(SECRET), "the secret survived: {s:?}");
    }
});
