//! The example servers as programs: built once per test binary (`cargo build --example ...`), run from the target
//! directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The examples the tests run; built together, so one `cargo build` serves every test binary's first call.
const EXAMPLES: [&str; 3] = ["echo_server", "broadcast_server", "metrics_endpoint"];

/// The directory of the built examples (`target/debug/examples`, or under `CARGO_TARGET_DIR`).
pub fn examples_dir() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut build = Command::new(env!("CARGO"));
        build.arg("build").current_dir(&manifest);
        for example in EXAMPLES {
            build.args(["--example", example]);
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build of the examples failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|dir| {
                if dir.is_relative() {
                    manifest.join(dir)
                } else {
                    dir
                }
            })
            .unwrap_or_else(|| manifest.join("target"));
        target.join("debug").join("examples")
    })
}
