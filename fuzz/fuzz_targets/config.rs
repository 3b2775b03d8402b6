//! A node's configuration file and its `PALA_*` environment overrides: the text before
//! the first NUL byte is the TOML file, each line after it one `KEY=value` override.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pala_node::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file, overrides) = text.split_once('\0').unwrap_or((text, ""));
    let env: Vec<(String, String)> = overrides
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let _ = Config::from_toml(file, Path::new("fuzz.toml"), &env);
});
