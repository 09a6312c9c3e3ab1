//! Target profiles: any text parses and validates to a profile or to an
//! error, never a panic. (That an error never quotes the profile's text is
//! a unit test in fourleg-target: a property over fuzzed text would feed
//! libFuzzer the message it searches for.)
#![no_main]

use std::path::Path;

use fourleg_target::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Profile::parse(text, Path::new("fuzz.toml"));
    }
});
