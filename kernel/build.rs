//! Relinks every image when the linker script changes: cargo does not see
//! files named only in link arguments.
fn main() {
    println!("cargo:rerun-if-changed=guest.ld");
}
