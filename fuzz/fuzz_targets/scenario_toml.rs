//! Scenario files: any text parses to a scenario or to an error, never a panic.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use fourleg_scenario::{Registry, Scenario};
use libfuzzer_sys::fuzz_target;

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/requirements.toml"))
        .expect("the committed registry loads")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Scenario::parse(text, Path::new("suites/fuzz/fuzz.toml"), &REGISTRY);
    }
});
