//! Rebuild when the embedded assets change: include_dir cannot tell cargo
//! which files it read.
fn main() {
    println!("cargo:rerun-if-changed=assets");
}
