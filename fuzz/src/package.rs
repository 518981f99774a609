//! What a client uploads: the zip check (sizes counted on the bytes that
//! really come out) and the ELF check of its `bootstrap`.

use std::io::{Cursor, Write};
use std::path::Path;

use mayfly_runner::elf::{classify_elf, validate_elf, validate_elf_reader};
use mayfly_runner::{bomb, testing, upload};

/// The unzipped cap the zip target checks against: small, so that a bomb
/// is found in microseconds, not seconds.
const CAP: u64 = 64 * 1024;

/// Arbitrary bytes are most often not a zip at all; the first byte
/// chooses whether the rest is the zip itself, the `bootstrap` of a zip
/// built here (stored or deflated, or a bootable image around the rest as
/// code), or the sizes of a lying zip bomb.
fn zip_from(input: &[u8]) -> Vec<u8> {
    let Some((&mode, rest)) = input.split_first() else {
        return Vec::new();
    };
    let image;
    let (mode, rest) = match mode % 5 {
        3 => {
            image = testing::pvh_elf(rest);
            (2, image.as_slice())
        }
        m => (m, rest),
    };
    match mode {
        0 => rest.to_vec(),
        1 | 2 => {
            let method = if mode == 1 {
                zip::CompressionMethod::Stored
            } else {
                zip::CompressionMethod::Deflated
            };
            let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
            let options = zip::write::SimpleFileOptions::default().compression_method(method);
            writer
                .start_file("bootstrap", options)
                .expect("start entry");
            writer.write_all(rest).expect("write entry");
            writer.finish().expect("finish zip").into_inner()
        }
        _ => {
            let mut sizes = [0u8; 8];
            for (slot, byte) in sizes.iter_mut().zip(rest) {
                *slot = *byte;
            }
            let real = u64::from(u32::from_le_bytes(sizes[..4].try_into().unwrap())) % (4 * CAP);
            let declared = u32::from_le_bytes(sizes[4..].try_into().unwrap());
            bomb::lying_zip(real, declared)
        }
    }
}

fn entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// A refused package leaves nothing in the directory; an accepted one
/// stayed within the cap, and its `bootstrap` is a native image or a
/// static Linux program.
#[test]
fn zip_check() {
    let dir = tempfile::tempdir().expect("temporary directory");
    bolero::check!().for_each(|input: &[u8]| {
        let zip = zip_from(input);
        match upload::check_within(&zip, dir.path(), CAP) {
            Ok(checked) => {
                assert!(
                    checked.unzipped_bytes <= CAP,
                    "{} bytes passed a cap of {CAP}",
                    checked.unzipped_bytes
                );
                let len = checked
                    .bootstrap
                    .as_file()
                    .metadata()
                    .expect("metadata")
                    .len();
                assert!(len <= CAP);
                let elf = std::fs::read(checked.bootstrap.path()).expect("read bootstrap");
                assert!(
                    classify_elf(&elf).is_ok(),
                    "an accepted bootstrap must be a native image or a static Linux program"
                );
            }
            Err(_) => assert_eq!(entries(dir.path()), 0, "a refused package wrote a file"),
        }
    });
}

/// The ELF check gives the same answer on bytes in memory and on a file
/// read piece by piece (the two ways an image is checked).
#[test]
fn elf_check() {
    bolero::check!().for_each(|input: &[u8]| {
        // A valid image with some bytes overwritten reaches far deeper
        // than random bytes; the first byte chooses.
        let elf = match input.split_first() {
            Some((&mode, rest)) if mode % 2 == 1 => {
                let mut elf = testing::pvh_elf(&[0xf4]);
                for pair in rest.chunks_exact(3) {
                    let at = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % elf.len();
                    elf[at] = pair[2];
                }
                elf
            }
            _ => input.to_vec(),
        };
        let in_memory = validate_elf(&elf);
        let from_reader = validate_elf_reader(Cursor::new(&elf), elf.len() as u64);
        assert_eq!(format!("{in_memory:?}"), format!("{from_reader:?}"));
    });
}
