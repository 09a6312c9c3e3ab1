//! JWT decoding and the search for signed tokens in text: never a panic,
//! and every token found is a piece of the text that looks signed.
#![no_main]

use fourleg_core::jwt;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = jwt::decode(&text);
    for t in jwt::find_signed_jwts(&text) {
        assert!(text.contains(t));
        assert!(jwt::looks_like_signed_jwt(t), "found {t:?}, which does not look signed");
    }
});
