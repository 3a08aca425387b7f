//! The node's configuration loader: `NodeConfig::from_layers` (what `showcall run --config` does after
//! reading the file), with the input as the TOML file's text. Bytes after a NUL are
//! `SHOWCALL_*=value` lines of the environment layer, which the same loader parses on top of the file.
//! Flags are left at their defaults (clap has checked them before the loader runs).
//!
//! Beyond "no panic": a configuration that loads is valid, and what the node then derives from it (the
//! apps' keys, the webhook targets) is derived without failing.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use showcall_node::cli::RunArgs;
use showcall_node::config::NodeConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, env) = text.split_once('\0').unwrap_or((text, ""));
    let env = env.lines().filter_map(|line| {
        let (name, value) = line.split_once('=')?;
        Some((name.to_owned(), value.to_owned()))
    });
    let Ok(config) = NodeConfig::from_layers(
        Some((Path::new("fuzz.toml"), toml)),
        env,
        &RunArgs::default(),
    ) else {
        return;
    };
    config.validate().expect("a loaded configuration is valid");
    let keys = config.app_keys();
    assert_eq!(keys.len(), config.apps.len(), "every app has its key");
    let with_webhook = config
        .apps
        .iter()
        .filter(|app| app.webhook_url.is_some())
        .count();
    assert_eq!(
        config.webhook_targets().len(),
        with_webhook,
        "every validated webhook makes a target"
    );
    let _ = config.uses_demo_secret();
});
