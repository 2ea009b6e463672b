//! Rebuild when the embedded assets change: include_dir cannot tell cargo
//! which files it read. On Linux with glibc, link the binary with packed
//! relative relocations (DT_RELR, glibc 2.36+, GNU ld 2.38+ or lld): the
//! loader then reads a 20 KB table instead of 1.4 MB of 60,000 relocation
//! entries at every start, which cut the peak memory at the TUI's first
//! frame by about a third (docs/benchmarks.md, "Start-up against tenere").
//! The binary stays position-independent (address randomisation kept).
fn main() {
    println!("cargo:rerun-if-changed=assets");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
