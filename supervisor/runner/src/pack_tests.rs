use std::io::{Cursor, Write};

use mayfly_proto::pack::{EntryKind, Pack};
use zip::write::SimpleFileOptions;

use super::*;

/// A zip of `(name, unix mode, content)`; a mode of 0 leaves it unset
/// (as zips made on Windows do); a name ending in `/` is a directory.
fn zip_of(entries: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, mode, data) in entries {
        let mut options = SimpleFileOptions::default();
        if *mode != 0 {
            options = options.unix_permissions(*mode);
        }
        if let Some(dir) = name.strip_suffix('/') {
            out.add_directory(dir, options).unwrap();
        } else if *mode & S_IFMT == S_IFLNK {
            out.add_symlink(*name, std::str::from_utf8(data).unwrap(), options)
                .unwrap();
        } else {
            out.start_file(*name, options).unwrap();
            out.write_all(data).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}

/// `zip` with every entry's external attributes cleared: no unix mode, as
/// in a zip made by a tool that records none.
fn without_modes(mut zip: Vec<u8>) -> Vec<u8> {
    let mut at = 0;
    while let Some(found) = zip[at..].windows(4).position(|w| w == b"PK\x01\x02") {
        let header = at + found;
        zip[header + 38..header + 42].fill(0);
        at = header + 4;
    }
    zip
}

fn pack_of_zip(zip: &[u8]) -> Result<Vec<u8>, PackWriteError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let temp = write_zip_pack(&mut archive, dir.path(), 1 << 20)?;
    Ok(std::fs::read(temp.path()).unwrap())
}

#[test]
fn a_zip_becomes_a_pack_under_var_task() {
    let elf = b"\x7fELF program".repeat(1000);
    let zip = zip_of(&[
        ("bootstrap", 0o755, &elf),
        ("lib/data.txt", 0o600, b"hello"),
        ("conf/", 0o750, b""),
        ("conf/empty", 0o644, b""),
        ("current", S_IFLNK | 0o777, b"lib/data.txt"),
    ]);
    let bytes = pack_of_zip(&zip).unwrap();
    let pack = Pack::parse(&bytes).unwrap();
    let bootstrap = pack.find("var/task/bootstrap").unwrap();
    assert_eq!(
        (bootstrap.kind, bootstrap.mode, bootstrap.data),
        (EntryKind::File, 0o755, &elf[..])
    );
    let data = pack.find("var/task/lib/data.txt").unwrap();
    assert_eq!((data.mode, data.data), (0o600, &b"hello"[..]));
    // Directories the zip left out are there, 0755; those it names keep
    // their mode.
    for dir in ["var", "var/task", "var/task/lib"] {
        let e = pack.find(dir).unwrap();
        assert_eq!((e.kind, e.mode), (EntryKind::Dir, 0o755), "{dir}");
    }
    assert_eq!(pack.find("var/task/conf").unwrap().mode, 0o750);
    assert!(pack.find("var/task/conf/empty").unwrap().data.is_empty());
    let link = pack.find("var/task/current").unwrap();
    assert_eq!(
        (link.kind, link.data),
        (EntryKind::Symlink, &b"lib/data.txt"[..])
    );
    // And the name service, Mayfly's: DNS from the host, over TCP.
    let resolv = pack.find("etc/resolv.conf").unwrap();
    assert_eq!(resolv.data, &b"nameserver 10.0.2.2\n"[..]);
    let hosts = String::from_utf8_lossy(pack.find("etc/hosts").unwrap().data).into_owned();
    assert!(hosts.contains("10.0.2.2 host.mayfly.internal\n"), "{hosts}");
    assert!(pack.find("etc/nsswitch.conf").is_some());
    assert_eq!(pack.len(), 12);
    assert_eq!(bytes.len() % 4096, 0);
}

#[test]
fn files_without_a_mode_get_the_defaults() {
    let zip = without_modes(zip_of(&[
        ("bootstrap", 0o644, b"x"),
        ("README", 0o600, b"y"),
        ("dir/", 0o700, b""),
    ]));
    let bytes = pack_of_zip(&zip).unwrap();
    let pack = Pack::parse(&bytes).unwrap();
    assert_eq!(pack.find("var/task/bootstrap").unwrap().mode, 0o755);
    assert_eq!(pack.find("var/task/README").unwrap().mode, 0o644);
    assert_eq!(pack.find("var/task/dir").unwrap().mode, 0o755);
    // A bootstrap the zip marks as not executable is made executable.
    let zip = zip_of(&[("bootstrap", 0o600, b"x")]);
    let bytes = pack_of_zip(&zip).unwrap();
    let pack = Pack::parse(&bytes).unwrap();
    assert_eq!(pack.find("var/task/bootstrap").unwrap().mode, 0o755);
}

#[test]
fn unclean_names_and_duplicates_are_refused() {
    for bad in ["../evil", "/etc/passwd", "a//b", "./bootstrap", "a/../../b"] {
        let zip = zip_of(&[("bootstrap", 0o755, b"x"), (bad, 0o644, b"y")]);
        let err = pack_of_zip(&zip).unwrap_err();
        assert!(
            matches!(err, PackWriteError::UncleanPath(ref p) if p == bad),
            "{bad}: {err}"
        );
    }
    // A file where a directory must be.
    let zip = zip_of(&[("lib", 0o644, b"x"), ("lib/a", 0o644, b"y")]);
    assert!(matches!(
        pack_of_zip(&zip),
        Err(PackWriteError::Duplicate(ref p)) if p == "var/task/lib"
    ));
}

#[test]
fn the_cap_counts_the_files() {
    let zip = zip_of(&[
        ("bootstrap", 0o755, &[1u8; 3000]),
        ("b", 0o644, &[2u8; 3000]),
    ]);
    let mut archive = zip::ZipArchive::new(Cursor::new(&zip)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        write_zip_pack(&mut archive, dir.path(), 5999),
        Err(PackWriteError::TooLarge(5999))
    ));
    assert!(write_zip_pack(&mut archive, dir.path(), 6000).is_ok());
}

#[test]
fn a_lying_zip_is_caught_while_copying() {
    // Declares 1000 bytes, inflates to about 100 KB.
    let bomb = crate::bomb::lying_zip(100_000, 1000);
    let err = pack_of_zip(&bomb).unwrap_err();
    assert!(
        matches!(err, PackWriteError::SizeMismatch { declared: 1000, .. }),
        "{err}"
    );
}

#[test]
fn a_directory_and_a_program_become_a_pack() {
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    std::fs::write(tree.join("a.txt"), b"alpha").unwrap();
    std::fs::write(tree.join("sub/deeper/b.bin"), vec![9u8; 10_000]).unwrap();
    std::fs::set_permissions(tree.join("a.txt"), std::fs::Permissions::from_mode(0o640)).unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("link")).unwrap();
    let program = root.path().join("prog");
    std::fs::write(&program, b"\x7fELF...").unwrap();

    let mut builder = PackBuilder::new(1 << 20);
    builder
        .add_host_file("var/runtime/prog", 0o755, 7, &program)
        .unwrap();
    builder.add_host_dir(&tree, TASK_DIR).unwrap();
    let mut out = tempfile::tempfile().unwrap();
    let len = builder.write_host(&mut out).unwrap();
    let mut bytes = Vec::new();
    out.seek(SeekFrom::Start(0)).unwrap();
    out.read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes.len() as u64, len);
    let pack = Pack::parse(&bytes).unwrap();
    assert_eq!(pack.find("var/runtime/prog").unwrap().data, b"\x7fELF...");
    assert_eq!(pack.find("var/runtime/prog").unwrap().mode, 0o755);
    let a = pack.find("var/task/a.txt").unwrap();
    assert_eq!((a.mode, a.data), (0o640, &b"alpha"[..]));
    assert_eq!(
        pack.find("var/task/sub/deeper/b.bin").unwrap().data,
        &[9u8; 10_000][..]
    );
    assert_eq!(
        pack.find("var/task/sub/deeper").unwrap().kind,
        EntryKind::Dir
    );
    let link = pack.find("var/task/link").unwrap();
    assert_eq!((link.kind, link.data), (EntryKind::Symlink, &b"a.txt"[..]));
    let paths: Vec<_> = pack.entries().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "var",
            "var/runtime",
            "var/runtime/prog",
            "var/task",
            "var/task/a.txt",
            "var/task/link",
            "var/task/sub",
            "var/task/sub/deeper",
            "var/task/sub/deeper/b.bin",
        ]
    );
}

#[test]
fn special_files_in_a_directory_are_refused() {
    let root = tempfile::tempdir().unwrap();
    // A Unix socket: a special file std can make without libc.
    let _listener = std::os::unix::net::UnixListener::bind(root.path().join("sock")).unwrap();
    let mut builder = PackBuilder::new(1 << 20);
    let err = builder.add_host_dir(root.path(), TASK_DIR).unwrap_err();
    assert!(
        matches!(err, PackWriteError::Special { what: "socket", .. }),
        "{err}"
    );
}

#[test]
fn a_file_that_changes_while_copied_is_caught() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("f");
    std::fs::write(&file, b"12345").unwrap();
    let mut builder = PackBuilder::new(1 << 20);
    builder
        .add_host_file("var/task/f", 0o644, 5, &file)
        .unwrap();
    std::fs::write(&file, b"123").unwrap();
    let mut out = tempfile::tempfile().unwrap();
    let err = builder.write_host(&mut out).unwrap_err();
    assert!(matches!(err, PackWriteError::SizeMismatch { .. }), "{err}");
}
