//! The committed C header (`sdk/include/vouch.h`) must be exactly what
//! cbindgen generates from `sdk/src/ffi.rs` today, and must compile as C and
//! C++. Needs the `cbindgen` binary (`cargo install cbindgen --locked`; the
//! header was generated with 0.29.4). `$CBINDGEN` overrides the binary.

#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL: &str = "install cbindgen: cargo install cbindgen --locked";
const REGENERATE: &str =
    "cbindgen --config sdk/cbindgen.toml --output sdk/include/vouch.h sdk/src/ffi.rs";

fn sdk_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn cbindgen() -> String {
    std::env::var("CBINDGEN").unwrap_or_else(|_| "cbindgen".to_owned())
}

fn cbindgen_version(bin: &str) -> Option<String> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn committed_header_matches_the_code() {
    let bin = cbindgen();
    let Some(version) = cbindgen_version(&bin) else {
        panic!("`{bin}` was not found or does not run: {INSTALL}");
    };
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("vouch.h");
    let out = Command::new(&bin)
        .current_dir(sdk_dir())
        .args(["--config", "cbindgen.toml", "--output"])
        .arg(&fresh)
        .arg("src/ffi.rs")
        .output()
        .unwrap();
    assert!(out.status.success(), "cbindgen failed: {}", String::from_utf8_lossy(&out.stderr));
    let generated = std::fs::read_to_string(&fresh).unwrap();
    let committed = std::fs::read_to_string(sdk_dir().join("include/vouch.h")).unwrap();
    if generated != committed {
        let line = generated
            .lines()
            .zip(committed.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "the end".to_owned(), |i| format!("line {}", i + 1));
        panic!(
            "sdk/include/vouch.h is out of date with sdk/src/ffi.rs (first difference at {line}; \
             {version}). Regenerate it from the repository root:\n  {REGENERATE}"
        );
    }
}

fn compile(compiler: &str, lang: &str, extra: &[&str], source: &Path) -> Option<String> {
    let mut cmd = Command::new(compiler);
    cmd.args(["-x", lang, "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
        .args(extra)
        .arg("-I")
        .arg(sdk_dir().join("include"))
        .arg(source);
    match cmd.output() {
        Err(_) => None,
        Ok(out) => {
            assert!(
                out.status.success(),
                "vouch.h does not compile with `{compiler} -x {lang}`: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(compiler.to_owned())
        }
    }
}

#[test]
fn header_compiles_as_c_and_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("use_vouch.c");
    std::fs::write(
        &source,
        r#"#include "vouch.h"
static int use_it(void) {
    vouch_publisher *p = 0;
    char msg[256];
    int32_t rc = vouch_publisher_new("key_file = 'k'", &p);
    if (rc != VOUCH_OK) { (void)vouch_last_error(msg, sizeof msg); return (int)rc; }
    rc = vouch_publish(p, "ai_stream_status", (const uint8_t *)"{}", 2);
    if (rc == VOUCH_ERR_QUEUE_FULL) { rc = VOUCH_OK; }
    (void)vouch_flush(p, 1000);
    char *stats = 0;
    if (vouch_stats_json(p, &stats) == VOUCH_OK) { vouch_string_free(stats); }
    return (int)vouch_publisher_close(p, 1000);
}
int main(void) { return use_it(); }
"#,
    )
    .unwrap();
    // The C compiler Rust links with is always there; C++ is checked when present.
    let c = compile("cc", "c", &["-std=c99", "-pedantic"], &source);
    assert!(c.is_some(), "no C compiler `cc` found");
    if compile("c++", "c++", &["-std=c++11"], &source).is_none() {
        eprintln!("note: no `c++`; the header's C++ compatibility was not checked");
    }
}
