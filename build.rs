//! Generates the Rust bindings of `ffi/zbpf_kpi.h`, the one declaration of the
//! interface between the engine and the C side of the kernel module. Only
//! the kernel build (feature `kmod`) calls through them, so only it runs
//! bindgen: a hosted build needs no libclang.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "kmod")]
    kpi_bindings();
}

#[cfg(feature = "kmod")]
fn kpi_bindings() {
    use std::env;
    use std::path::PathBuf;

    let header = "ffi/zbpf_kpi.h";
    println!("cargo:rerun-if-changed={header}");
    println!("cargo:rerun-if-env-changed=LIBCLANG_PATH");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bindings = bindgen::Builder::default()
        .header(header)
        .use_core()
        .ctypes_prefix("core::ffi")
        .allowlist_function("zbpf_.*")
        // The kernel functions Rust calls without a shim.
        .allowlist_function("binuptime|getbinuptime|getboottimebin")
        .allowlist_type("zbpf_.*")
        .allowlist_var("ZBPF_.*")
        .layout_tests(false)
        .generate_comments(true)
        .clang_arg("-ffreestanding")
        .generate()
        .expect("bindgen could not process ffi/zbpf_kpi.h");
    bindings.write_to_file(out.join("zbpf_kpi.rs")).expect("writing the bindings");
}
