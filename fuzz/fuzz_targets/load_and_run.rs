//! Load, optimize, plan and run: whatever loads must run or fail with a typed error.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/fuzz_harness.rs"]
#[allow(dead_code)]
mod fuzz_harness;

fuzz_target!(|data: &[u8]| {
    fuzz_harness::load_and_run(data);
});
