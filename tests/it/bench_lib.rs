//! `scripts/bench-lib.sh --self-test`: the benches' shared helpers (the
//! median of an even count is the mean of the two middle values) checked
//! with every `cargo test`, not only when someone runs a bench.

use std::process::Command;

#[test]
fn bench_lib_self_test_passes() {
    let out = Command::new("bash")
        .args(["scripts/bench-lib.sh", "--self-test"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stdout}{stderr}", out.status);
    assert!(stdout.contains("checks passed"), "{stdout}{stderr}");
}
