//! The examples' documented command lines are true: every flag in `fetch`'s
//! usage (its doc comment and the README) is one `fetch --help` lists, and
//! the other way round; `cargo run --example demo`, as the README says,
//! finishes on its own and succeeds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const FETCH_SOURCE: &str = include_str!("../fetch.rs");
const README: &str = include_str!("../../README.md");

fn example(name: &str) -> PathBuf {
    pop3_examples::example_binary(name).unwrap()
}

/// The `--flag` words of `text`.
fn flags(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
        if let Some(name) = word.strip_prefix("--") {
            if name.starts_with(|c: char| c.is_ascii_lowercase()) {
                found.insert(format!("--{name}"));
            }
        }
    }
    found
}

/// The first fenced block after `marker` in `text`, with `prefix` taken off
/// each line.
fn block_after(text: &str, marker: &str, prefix: &str) -> String {
    let start = text.find(marker).unwrap_or_else(|| panic!("no {marker:?}"));
    let mut lines = text[start..]
        .lines()
        .map(|l| l.strip_prefix(prefix).unwrap_or(l).trim_start());
    lines
        .find(|l| l.starts_with("```"))
        .expect("a fenced block");
    lines
        .take_while(|l| !l.starts_with("```"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn fetch_usage_lines_match_its_help() {
    let output = Command::new(example("fetch"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    let mut offered = flags(&help);
    offered.remove("--help");
    offered.remove("--version");
    assert!(offered.contains("--pin-sha256"), "{help}");

    let documented = [
        ("fetch.rs", block_after(FETCH_SOURCE, "//! ```text", "//!")),
        ("README.md", block_after(README, "## fetch", "")),
    ];
    for (origin, usage) in documented {
        assert!(usage.contains("--example fetch"), "{origin}: {usage}");
        let usage_flags: BTreeSet<String> = flags(&usage)
            .into_iter()
            .filter(|f| f != "--release" && f != "--example")
            .collect();
        let unknown: Vec<_> = usage_flags.difference(&offered).collect();
        assert!(
            unknown.is_empty(),
            "{origin} documents flags fetch does not have: {unknown:?}"
        );
        let undocumented: Vec<_> = offered.difference(&usage_flags).collect();
        assert!(
            undocumented.is_empty(),
            "{origin}'s usage misses flags fetch has: {undocumented:?}"
        );
    }
}

#[test]
fn the_demo_finishes_on_its_own_and_succeeds() {
    assert!(README.contains("cargo run --example demo"));
    let mut child = Command::new(example("demo"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the demo did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}
