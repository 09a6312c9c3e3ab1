//! The evidence redactor on any body a target may send: no signed token and
//! no known secret survives it, whatever the body's shape or bytes.
#![no_main]

use fourleg_core::{jwt, Secret};
use fourleg_target::evidence::{self, Redactor};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-client-secret-0123456789";

fuzz_target!(|data: &[u8]| {
    let body = evidence::body_value(data, false);
    let redactor = Redactor::default();
    redactor.learn(&Secret::new(SECRET), "secret of agent");
    redactor.learn_tokens(&body);
    let (red, _tokens) = evidence::redact_body(&body);
    let out = redactor.scrub_value(&red).to_string();
    assert!(jwt::find_signed_jwts(&out).is_empty(), "a signed token survived: {out}");
    assert!(!out.contains(SECRET), "the secret survived: {out}");
});
