//! Not a test of the library: a target that misbehaves on demand, so that
//! `scripts/fuzz-smoke.sh --self-test` can show the smoke run fails when a
//! target crashes, hangs, runs out of memory, leaks, exits or stalls before
//! fuzzing, or does not build. With `FUZZ_SMOKE_INJECT` unset it does
//! nothing (and the smoke run skips it).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[cfg(feature = "inject-build-failure")]
compile_error!("injected build failure (FUZZ_SMOKE_INJECT=build)");

fn injected() -> String {
    std::env::var("FUZZ_SMOKE_INJECT").unwrap_or_default()
}

fuzz_target!(
    init: {
        if injected() == "stall" {
            // Before fuzzing starts, where libFuzzer's -timeout does not
            // reach: only the script's wall-clock limit ends it.
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
    },
    |data: &[u8]| {
        match injected().as_str() {
            "hang" => loop {
                std::hint::black_box(data);
            },
            "crash" => panic!("injected crash"),
            "oom" => {
                let big = vec![1u8; 3 << 30];
                std::hint::black_box(&big);
            }
            "leak" => std::mem::forget(std::hint::black_box(vec![0u8; 4096])),
            "exit" => std::process::exit(0),
            _ => {}
        }
    }
);
