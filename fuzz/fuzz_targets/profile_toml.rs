//! Target profiles: any text parses and validates to a profile or to an
//! error that never quotes the profile's text (a line may hold a secret).
#![no_main]

use std::path::Path;

use fourleg_target::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = Profile::parse(text, Path::new("fuzz.toml")) {
            let message = e.to_string();
            // A long line of the input is never echoed back whole.
            for line in text.lines().filter(|l| l.trim().len() > 40) {
                assert!(!message.contains(line.trim()), "the error quotes the profile: {message}");
            }
        }
    }
});
