//! Links FreeBSD's own amd64 BPF JIT (bpf_jitter) into the benchmark when a
//! FreeBSD source tree is at hand, so that the filter benchmark can time
//! zbpf's JIT beside it; without one the benchmark says why it did not.
//!
//! The tree: `ZBPF_FREEBSD_SRC`, else `/usr/src` when it holds
//! `sys/net/bpf_jitter.c` (FreeBSD), else `target/freebsd-jitter/src` of
//! this repository (a copy fetched for a check, never committed). Its
//! sources are compiled where they are, with the userland headers of
//! `jitter/include` and our shim `jitter/shim.c`. After adding a tree at a
//! default place, `touch tests/bench/build.rs` (only existing paths are
//! watched, so that CI does not rebuild every time).

use std::path::{Path, PathBuf};

/// What bpf_jitter is built from, relative to the tree.
const SOURCES: [&str; 2] = ["sys/net/bpf_jitter.c", "sys/amd64/amd64/bpf_jit_machdep.c"];
const HEADERS: [&str; 2] = ["sys/net/bpf_jitter.h", "sys/amd64/amd64/bpf_jit_machdep.h"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(zbpf_bpf_jitter)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=jitter");
    println!("cargo::rerun-if-env-changed=ZBPF_FREEBSD_SRC");
    match tree().and_then(|src| build(&src).map(|()| src)) {
        Ok(src) => {
            println!("cargo::rustc-cfg=zbpf_bpf_jitter");
            println!("cargo::rustc-env=ZBPF_BPF_JITTER_SRC={}", src.display());
        }
        Err(why) => println!("cargo::rustc-env=ZBPF_BPF_JITTER_MISSING={why}"),
    }
}

/// The FreeBSD source tree to build from, or why there is none.
fn tree() -> Result<PathBuf, String> {
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" {
        return Err(format!("bpf_jitter's amd64 code generator does not run on {arch}"));
    }
    if let Some(dir) = std::env::var_os("ZBPF_FREEBSD_SRC") {
        return Ok(PathBuf::from(dir));
    }
    let fetched = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/freebsd-jitter/src");
    [PathBuf::from("/usr/src"), fetched]
        .into_iter()
        .find(|d| d.join(SOURCES[0]).is_file())
        .map(|d| d.canonicalize().unwrap_or(d))
        .ok_or_else(|| {
            "no FreeBSD source tree (ZBPF_FREEBSD_SRC unset; neither /usr/src nor \
             target/freebsd-jitter/src holds sys/net/bpf_jitter.c)"
                .to_string()
        })
}

/// Compiles bpf_jitter from `src` and our shim into the package.
fn build(src: &Path) -> Result<(), String> {
    for f in SOURCES.iter().chain(&HEADERS) {
        let path = src.join(f);
        if !path.is_file() {
            return Err(format!("{} is missing", path.display()));
        }
        println!("cargo::rerun-if-changed={}", path.display());
    }
    let compat = Path::new(env!("CARGO_MANIFEST_DIR")).join("jitter");
    let sys = src.join("sys");
    // FreeBSD's code as it is, its warnings not ours to fix.
    cc::Build::new()
        .files(SOURCES.iter().map(|f| src.join(f)))
        .include(compat.join("include"))
        .include(&sys)
        .warnings(false)
        .flag_if_supported("-w")
        .try_compile("zbpf_bench_bpf_jitter")
        .map_err(|e| format!("bpf_jitter from {} does not compile: {e}", src.display()))?;
    cc::Build::new()
        .file(compat.join("shim.c"))
        .include(compat.join("include"))
        .include(&sys)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .try_compile("zbpf_bench_jitter_shim")
        .map_err(|e| format!("tests/bench/jitter/shim.c does not compile: {e}"))
}
