//! Rebuild when the embedded assets change: include_dir cannot tell cargo
//! which files it read. On Linux with glibc, link the binary with packed
//! relative relocations (DT_RELR, glibc 2.36+, GNU ld 2.38+ or lld): the
//! loader then reads a 20 KB table instead of 1.4 MB of 60,000 relocation
//! entries at every start, which cut the peak memory at the TUI's first
//! frame by about a third (docs/benchmarks.md, "Start-up against tenere").
//! The binary stays position-independent (address randomisation kept).
//!
//! A release binary linked by rust-lld (the default linker of
//! x86_64-unknown-linux-gnu since Rust 1.90) also gets the start-up order:
//! `scripts/startup-order.txt` lists the functions run before the first
//! frame (scripts/gen-startup-order), and `--symbol-ordering-file` places
//! them together at the start of .text. The kernel maps code 64 KB around
//! each page fault, so start-up code spread over 14 MB of .text faulted in
//! 4.3-5 MB; placed together, the first frame's peak RSS fell from 10.1 to
//! 6.3 MB (docs/benchmarks.md). A name the binary no longer has is ignored,
//! so a stale list costs memory, never a build. `.cargo/config.toml`
//! selects v0 symbol names for this target, which carry no per-item hash,
//! and Cargo.toml builds loreweave's crates in one codegen unit, so that
//! no `.llvm.<hash>` suffix is added to their internal functions: the list
//! survives changes to the code (with legacy names a one-function change
//! lost all of loreweave's own names; with 16 units a change renamed the
//! functions of its unit). With another linker (GNU ld has no such
//! option), a configured linker, or `LOREWEAVE_NO_STARTUP_ORDER=1`, the
//! list is not used.
use std::path::Path;
use std::process::Command;

const STARTUP_ORDER: &str = "scripts/startup-order.txt";

fn main() {
    println!("cargo:rerun-if-changed=assets");
    println!("cargo:rerun-if-changed={STARTUP_ORDER}");
    println!("cargo:rerun-if-env-changed=LOREWEAVE_NO_STARTUP_ORDER");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if var("PROFILE") == "release"
        && var("LOREWEAVE_NO_STARTUP_ORDER").is_empty()
        && links_with_rust_lld()
    {
        let list = Path::new(&var("CARGO_MANIFEST_DIR")).join(STARTUP_ORDER);
        if list.is_file() {
            // -Xlinker passes each argument whole: a path with a comma or a
            // space stays one argument.
            for arg in [
                "-Xlinker".to_owned(),
                format!("--symbol-ordering-file={}", list.display()),
                "-Xlinker".to_owned(),
                "--no-warn-symbol-ordering".to_owned(),
            ] {
                println!("cargo:rustc-link-arg-bins={arg}");
            }
        }
    }
}

/// Whether the binary is linked by rustc's own default on
/// x86_64-unknown-linux-gnu from 1.90 on: rust-lld, which takes
/// `--symbol-ordering-file`. False whenever the linker was configured
/// (`RUSTC_LINKER`, or linker flags in RUSTFLAGS): it may be GNU ld.
fn links_with_rust_lld() -> bool {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("TARGET") != "x86_64-unknown-linux-gnu" || !var("RUSTC_LINKER").is_empty() {
        return false;
    }
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    if ["linker", "fuse-ld", "link-self-contained"]
        .iter()
        .any(|flag| flags.contains(flag))
    {
        return false;
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    // "release: 1.95.0" (or "1.96.0-nightly").
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("release: "))
        .and_then(|release| {
            let mut parts = release.split(['.', '-']);
            let major: u32 = parts.next()?.parse().ok()?;
            let minor: u32 = parts.next()?.parse().ok()?;
            Some(major > 1 || minor >= 90)
        })
        .unwrap_or(false)
}
