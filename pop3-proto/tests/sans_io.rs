//! pop3-proto stays sans-IO: no sockets, async, threads or clocks in its
//! source, and no unsafe.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).expect("src readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).expect("source readable");
            out.push((path.display().to_string(), text));
        }
    }
}

#[test]
fn no_io_async_threads_or_clocks_in_the_source() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() >= 8, "found {} files", files.len());
    let forbidden = [
        "std::net",
        "std::fs",
        "std::thread",
        "std::time",
        "std::process",
        "std::io::Read",
        "async fn",
        ".await",
        "tokio",
        "Instant::",
        "SystemTime",
        "unsafe ",
    ];
    for (path, text) in &files {
        for word in forbidden {
            assert!(!text.contains(word), "{path} mentions `{word}`");
        }
    }
    let lib = files
        .iter()
        .find(|(p, _)| p.ends_with("lib.rs"))
        .expect("lib.rs");
    assert!(lib.1.contains("#![forbid(unsafe_code)]"));
}
