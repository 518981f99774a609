//! What the tests run and compare: the images `cargo xtask images` builds
//! into `target/images/`, zips and broken ELFs made from them, and the
//! encodings the API uses.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use super::root;

/// `target/images/<file>`, which must exist.
pub fn image_path(file: &str) -> PathBuf {
    let path = root().join("target").join("images").join(file);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask images` first (`cargo xtask test` builds them and runs the tests)",
        path.display()
    );
    path
}

/// A built image, copied into a directory unique to the caller, which is
/// also the `TMPDIR` of the `mayfly` under test (so a package is unpacked
/// there too). QEMU's command line names a file in it, so the test can
/// prove afterwards that no QEMU of its own is left, even while other tests
/// run.
pub struct Image {
    dir: tempfile::TempDir,
    /// The unique copy.
    pub path: PathBuf,
}

impl Image {
    /// The directory unique to this image.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Copies `target/images/<file>` to a fresh temporary directory.
pub fn image(file: &str) -> Image {
    let source = image_path(file);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join(file);
    std::fs::copy(&source, &path).expect("copy image");
    Image { dir, path }
}

/// Writes a zip with the given entries (stored, mode 755) to `path`.
pub fn write_zip(path: &Path, entries: &[(&str, &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    for (name, data) in entries {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(0o755);
        zip.start_file(*name, options).unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap();
}

/// `floor.elf` with its PVH note's type changed from 18 to 17: an x86_64
/// ELF that QEMU cannot boot by PVH.
pub fn floor_without_pvh() -> Vec<u8> {
    let mut floor = std::fs::read(image_path("floor.elf")).unwrap();
    let at = floor
        .windows(4)
        .position(|w| w == b"Xen\0")
        .expect("Xen note")
        - 4;
    assert_eq!(floor[at], 18, "XEN_ELFNOTE_PHYS32_ENTRY");
    floor[at] = 17;
    floor
}

/// `base64(sha256(bytes))`, as Lambda's `CodeSha256`.
pub fn code_sha256(bytes: &[u8]) -> String {
    let hex = mayfly_sigv4::canonical::sha256_hex(bytes);
    let raw: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Decodes standard base64.
pub fn b64decode(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or_else(|e| panic!("not base64 ({e}): {text}"))
}

/// A function's payload parsed as JSON.
pub fn payload_json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).unwrap_or_else(|e| {
        panic!(
            "payload is not JSON ({e}): {:?}",
            String::from_utf8_lossy(payload)
        )
    })
}
