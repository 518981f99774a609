//! Loading a function package: a bare `image.elf` (or static Linux
//! program), or a Lambda-style `package.zip` whose `bootstrap` entry is
//! one. A Linux function also gets its pack (the whole package under
//! `/var/task`, see [`crate::pack`]), written beside the extracted image.
//!
//! The image is checked ([`crate::elf`]) before any VM starts. A zip's
//! `bootstrap` is decompressed as a stream into a temporary file, counting
//! the bytes that really come out: a zip's declared sizes can lie, the cap
//! holds regardless, and the image is never held whole in memory.

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use thiserror::Error;

pub use crate::elf::{
    classify_elf, classify_elf_reader, validate_elf, validate_elf_reader, Bootstrap, ElfError,
    ElfInfo, PackageKind, ELF_MAGIC,
};
use crate::pack::{write_zip_pack, PackBuilder, PackWriteError, TASK_DIR};

/// The largest image accepted (Lambda's own limit on an unzipped package).
pub const MAX_IMAGE_BYTES: u64 = mayfly_proto::limits::UNZIPPED_PACKAGE_BYTES;

const ZIP_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// Why the `bootstrap` entry of a zip could not be read.
#[derive(Debug, Error)]
pub enum BootstrapError {
    /// There is none.
    #[error("the package has no `bootstrap` entry")]
    Missing,
    /// The archive could not be read.
    #[error("{0}")]
    Zip(zip::result::ZipError),
    /// Decompressing it failed.
    #[error("{0}")]
    Read(std::io::Error),
    /// Writing it to its temporary file failed (a full disk, for one).
    #[error("cannot write the unpacked image: {0}")]
    Write(std::io::Error),
    /// More than the cap came out of it, whatever its declared size.
    #[error("`bootstrap` unpacks to more than {0} bytes")]
    TooLarge(u64),
}

/// Copies at most `cap` bytes of `from` into `to`; `Ok(None)` when there
/// was more (what was copied then is garbage for the caller to drop).
/// Read and write errors are told apart, because a full disk is the
/// host's fault and a corrupt stream the package's.
pub fn copy_capped(
    from: &mut impl Read,
    to: &mut impl Write,
    cap: u64,
) -> Result<Option<u64>, BootstrapError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut copied = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(Some(copied)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(BootstrapError::Read(e)),
        };
        copied += n as u64;
        if copied > cap {
            return Ok(None);
        }
        to.write_all(&buf[..n]).map_err(BootstrapError::Write)?;
    }
}

/// Decompresses the `bootstrap` entry into a new temporary file in `dir`,
/// stopping (and deleting the file) once more than `cap` bytes came out.
/// Returns the file, rewound, and its length.
pub fn extract_bootstrap<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    dir: &Path,
    cap: u64,
) -> Result<(tempfile::NamedTempFile, u64), BootstrapError> {
    let mut entry = match archive.by_name("bootstrap") {
        Ok(entry) => entry,
        Err(zip::result::ZipError::FileNotFound) => return Err(BootstrapError::Missing),
        Err(e) => return Err(BootstrapError::Zip(e)),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".unpacking-")
        .tempfile_in(dir)
        .map_err(BootstrapError::Write)?;
    let len =
        copy_capped(&mut entry, temp.as_file_mut(), cap)?.ok_or(BootstrapError::TooLarge(cap))?;
    temp.as_file_mut().rewind().map_err(BootstrapError::Write)?;
    Ok((temp, len))
}

/// Why a package could not be loaded.
#[derive(Debug, Error)]
pub enum PackageError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The package path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Neither ELF nor zip magic.
    #[error("{0} is neither an ELF image nor a zip package")]
    UnknownFormat(PathBuf),
    /// The file or the `bootstrap` entry is larger than [`MAX_IMAGE_BYTES`].
    #[error("{0} is larger than the limit of {MAX_IMAGE_BYTES} bytes")]
    TooLarge(PathBuf),
    /// The zip archive is unreadable.
    #[error("{path} is not a readable zip archive: {source}")]
    Zip {
        /// The package path.
        path: PathBuf,
        /// What the zip reader said.
        source: zip::result::ZipError,
    },
    /// The zip has no `bootstrap` entry.
    #[error("{0} has no `bootstrap` entry (a package's bootstrap is its unikernel image)")]
    NoBootstrap(PathBuf),
    /// Extracting `bootstrap` to a temporary file failed.
    #[error("cannot extract the bootstrap of {path}: {source}")]
    Extract {
        /// The package path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A Linux function's files cannot be packed for its VM.
    #[error("cannot lay out the files of {path} for /var/task: {source}")]
    Pack {
        /// The package path.
        path: PathBuf,
        /// Why.
        source: PackWriteError,
    },
    /// The image is not bootable.
    #[error("{path} cannot run: {source}")]
    Invalid {
        /// The ELF's path (for a zip: the package path with `:bootstrap`).
        path: PathBuf,
        /// Which check failed.
        source: ElfError,
    },
}

/// A validated package on disk: a native image, ready for `-kernel`, or
/// a Linux program and its pack, ready for `-initrd`. For a zip package
/// the image (and pack) are temporary files, deleted when this is dropped.
#[derive(Debug)]
pub struct Image {
    path: PathBuf,
    bootstrap: Bootstrap,
    pack: Option<PathBuf>,
    _temp: Option<tempfile::TempDir>,
}

impl Image {
    /// Where the ELF (the `bootstrap`) is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What classification found.
    pub fn bootstrap(&self) -> Bootstrap {
        self.bootstrap
    }

    /// Native image or Linux function.
    pub fn kind(&self) -> PackageKind {
        self.bootstrap.kind()
    }

    /// A Linux function's pack.
    pub fn pack(&self) -> Option<&Path> {
        self.pack.as_deref()
    }
}

/// Loads and validates an `image.elf` or `package.zip` (decided by content,
/// not by extension).
pub fn load(path: &Path) -> Result<Image, PackageError> {
    let read_err = |source| PackageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(read_err)?;
    let len = file.metadata().map_err(read_err)?.len();
    let mut magic = [0u8; 4];
    file.read_exact(&mut magic)
        .map_err(|_| PackageError::UnknownFormat(path.to_path_buf()))?;
    if &magic == ELF_MAGIC {
        if len > MAX_IMAGE_BYTES {
            return Err(PackageError::TooLarge(path.to_path_buf()));
        }
        let bootstrap =
            classify_elf_reader(&mut file, len).map_err(|source| PackageError::Invalid {
                path: path.to_path_buf(),
                source,
            })?;
        if bootstrap.kind() == PackageKind::Native {
            return Ok(Image {
                path: path.to_path_buf(),
                bootstrap,
                pack: None,
                _temp: None,
            });
        }
        // A bare Linux program: a package of that one file as `bootstrap`.
        let extract_err = |source| PackageError::Extract {
            path: path.to_path_buf(),
            source,
        };
        let temp = tempfile::Builder::new()
            .prefix("mayfly-package-")
            .tempdir()
            .map_err(extract_err)?;
        let pack_err = |source| PackageError::Pack {
            path: path.to_path_buf(),
            source,
        };
        let mut builder = PackBuilder::new(MAX_IMAGE_BYTES);
        builder
            .add_host_file(&format!("{TASK_DIR}/bootstrap"), 0o755, len, path)
            .map_err(pack_err)?;
        builder.add_name_service().map_err(pack_err)?;
        let pack_path = temp.path().join("package.pack");
        let mut out = File::create(&pack_path).map_err(extract_err)?;
        builder.write_host(&mut out).map_err(pack_err)?;
        fs::set_permissions(&pack_path, fs::Permissions::from_mode(0o444)).map_err(extract_err)?;
        return Ok(Image {
            path: path.to_path_buf(),
            bootstrap,
            pack: Some(pack_path),
            _temp: Some(temp),
        });
    }
    if &magic != ZIP_MAGIC {
        return Err(PackageError::UnknownFormat(path.to_path_buf()));
    }
    let zip_err = |source| PackageError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = zip::ZipArchive::new(file).map_err(zip_err)?;
    let extract_err = |source| PackageError::Extract {
        path: path.to_path_buf(),
        source,
    };
    let temp = tempfile::Builder::new()
        .prefix("mayfly-package-")
        .tempdir()
        .map_err(extract_err)?;
    let (mut elf, elf_len) = extract_bootstrap(&mut archive, temp.path(), MAX_IMAGE_BYTES)
        .map_err(|e| match e {
            BootstrapError::Missing => PackageError::NoBootstrap(path.to_path_buf()),
            BootstrapError::Zip(e) => zip_err(e),
            BootstrapError::Read(e) | BootstrapError::Write(e) => extract_err(e),
            BootstrapError::TooLarge(_) => PackageError::TooLarge(path.to_path_buf()),
        })?;
    let bootstrap = classify_elf_reader(elf.as_file_mut(), elf_len).map_err(|source| {
        PackageError::Invalid {
            path: PathBuf::from(format!("{}:bootstrap", path.display())),
            source,
        }
    })?;
    let image_path = temp.path().join("bootstrap");
    elf.persist(&image_path).map_err(|e| extract_err(e.error))?;
    fs::set_permissions(&image_path, fs::Permissions::from_mode(0o500)).map_err(extract_err)?;
    let pack = match bootstrap.kind() {
        PackageKind::Native => None,
        PackageKind::Linux => {
            let packed =
                write_zip_pack(&mut archive, temp.path(), MAX_IMAGE_BYTES).map_err(|source| {
                    PackageError::Pack {
                        path: path.to_path_buf(),
                        source,
                    }
                })?;
            let pack_path = temp.path().join("package.pack");
            packed
                .persist(&pack_path)
                .map_err(|e| extract_err(e.error))?;
            // A jailed VM's uid reads it through a bind mount.
            fs::set_permissions(&pack_path, fs::Permissions::from_mode(0o444))
                .map_err(extract_err)?;
            Some(pack_path)
        }
    };
    Ok(Image {
        path: image_path,
        bootstrap,
        pack,
        _temp: Some(temp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{pvh_elf, EXIT_OK};

    fn zip_with(entries: &[(&str, &[u8])]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        {
            let mut zip = zip::ZipWriter::new(file.as_file_mut());
            for (name, data) in entries {
                zip.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                zip.write_all(data).unwrap();
            }
            zip.finish().unwrap();
        }
        file
    }

    #[test]
    fn the_cap_holds_on_the_bytes_that_come_out() {
        let dir = tempfile::tempdir().unwrap();
        let zip = zip_with(&[("bootstrap", &[7u8; 10_000])]);
        let mut archive = zip::ZipArchive::new(File::open(zip.path()).unwrap()).unwrap();
        let (file, len) = extract_bootstrap(&mut archive, dir.path(), 10_000).unwrap();
        assert_eq!(len, 10_000);
        assert_eq!(fs::read(file.path()).unwrap().len(), 10_000);
        drop(file);
        let refused = extract_bootstrap(&mut archive, dir.path(), 9_999).unwrap_err();
        assert!(
            matches!(refused, BootstrapError::TooLarge(9_999)),
            "{refused}"
        );
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "a refused extraction left its file"
        );
    }

    #[test]
    fn packages_load_by_content() {
        let elf = pvh_elf(EXIT_OK);
        let mut bare = tempfile::NamedTempFile::new().unwrap();
        bare.write_all(&elf).unwrap();
        let image = load(bare.path()).unwrap();
        assert_eq!(image.path(), bare.path());

        let zip = zip_with(&[("README", b"hi"), ("bootstrap", &elf)]);
        let image = load(zip.path()).unwrap();
        assert_eq!(fs::read(image.path()).unwrap(), elf);
        let mode = fs::metadata(image.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o500);
        let dir = image.path().parent().unwrap().to_path_buf();
        drop(image);
        assert!(!dir.exists(), "the extraction directory outlived the image");
    }

    #[test]
    fn linux_packages_come_with_their_pack() {
        let program = crate::testing::linux_elf(2, 0x40_0000, None);
        let zip = zip_with(&[("bootstrap", &program), ("data/a.txt", b"hi")]);
        let image = load(zip.path()).unwrap();
        assert_eq!(image.kind(), PackageKind::Linux);
        let bytes = fs::read(image.pack().unwrap()).unwrap();
        let pack = mayfly_proto::pack::Pack::parse(&bytes).unwrap();
        assert_eq!(pack.find("var/task/bootstrap").unwrap().data, &program[..]);
        assert_eq!(pack.find("var/task/data/a.txt").unwrap().data, b"hi");

        let mut bare = tempfile::NamedTempFile::new().unwrap();
        bare.write_all(&program).unwrap();
        let image = load(bare.path()).unwrap();
        assert_eq!(image.path(), bare.path());
        let bytes = fs::read(image.pack().unwrap()).unwrap();
        let pack = mayfly_proto::pack::Pack::parse(&bytes).unwrap();
        let bootstrap = pack.find("var/task/bootstrap").unwrap();
        assert_eq!((bootstrap.mode, bootstrap.data), (0o755, &program[..]));
        assert!(load(zip_with(&[("bootstrap", &pvh_elf(EXIT_OK))]).path())
            .unwrap()
            .pack()
            .is_none());
    }

    #[test]
    fn package_errors() {
        let zip = zip_with(&[("main", b"x")]);
        assert!(matches!(
            load(zip.path()),
            Err(PackageError::NoBootstrap(_))
        ));
        let zip = zip_with(&[("bootstrap", b"#!/bin/sh\necho hi\n")]);
        let err = load(zip.path()).unwrap_err();
        assert!(matches!(
            &err,
            PackageError::Invalid {
                source: ElfError::Script(line),
                ..
            } if line == "#!/bin/sh"
        ));
        let zip = zip_with(&[("bootstrap", b"\x7fELF too short")]);
        let err = load(zip.path()).unwrap_err();
        assert!(matches!(
            err,
            PackageError::Invalid {
                source: ElfError::NotElf,
                ..
            }
        ));
        assert!(err
            .to_string()
            .ends_with(":bootstrap cannot run: not an ELF file"));
        let mut text = tempfile::NamedTempFile::new().unwrap();
        text.write_all(b"hello").unwrap();
        assert!(matches!(
            load(text.path()),
            Err(PackageError::UnknownFormat(_))
        ));
        assert!(matches!(
            load(Path::new("/nonexistent/image.elf")),
            Err(PackageError::Read { .. })
        ));
    }
}
