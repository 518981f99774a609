//! The package's side of the file system, `/dev`, paths and flags.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use mayfly_proto::pack::{self, EntryKind, EntrySpec, Pack};

use super::*;
use crate::abi::*;

/// A pack of `(path, kind, mode, data)` entries.
pub(super) fn build(entries: &[(&str, EntryKind, u32, &[u8])]) -> Vec<u8> {
    let specs: Vec<EntrySpec<'_>> = entries
        .iter()
        .map(|&(path, kind, mode, data)| EntrySpec {
            path,
            kind,
            mode,
            size: data.len() as u64,
        })
        .collect();
    let plan = pack::plan(&specs).unwrap();
    let mut bytes = plan.header.clone();
    bytes.resize(plan.total_len as usize, 0);
    for (offset, (_, _, _, data)) in plan.data_offsets.iter().zip(entries) {
        let at = *offset as usize;
        bytes[at..at + data.len()].copy_from_slice(data);
    }
    bytes
}

use EntryKind::{Dir, File, Symlink as Link};

pub(super) fn big() -> Vec<u8> {
    (0..10_000u32).map(|i| (i % 251) as u8).collect()
}

/// A function's package, with the odd things a zip may hold.
pub(super) fn sample(big: &[u8]) -> Vec<u8> {
    build(&[
        ("var/task/bootstrap", File, 0o755, b"\x7fELF-bootstrap"),
        ("var/task/data/a.txt", File, 0o644, b"hello world"),
        ("var/task/data/b.bin", File, 0o644, big),
        ("var/task/lib", Dir, 0o700, b""),
        ("var/task/lib/libx.so", File, 0o755, b"so"),
        ("var/task/secret", File, 0o000, b"s"),
        ("var/task/link_rel", Link, 0o777, b"data/a.txt"),
        ("var/task/link_abs", Link, 0o777, b"/var/task/data"),
        ("var/task/up", Link, 0o777, b"../task/./data/"),
        ("var/task/loop1", Link, 0o777, b"loop2"),
        ("var/task/loop2", Link, 0o777, b"loop1"),
        ("var/task/dangling", Link, 0o777, b"nowhere"),
        ("var/task/totmp", Link, 0o777, b"/tmp"),
        ("tmp/hidden", File, 0o644, b"under the mount"),
        ("proc/cpuinfo", File, 0o644, b"hidden"),
        ("var/runtime/empty", File, 0o644, b""),
    ])
}

pub(super) fn read_all(vfs: &Vfs<'_>, file: &OpenFile<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 97];
    loop {
        let n = file.pread(vfs, &mut buf, out.len() as u64).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

pub(super) fn names(entries: &[DirEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.name.clone()).unwrap())
        .collect()
}

#[test]
fn pack_files_read_seek_and_pread() {
    let big = big();
    let bytes = sample(&big);
    let vfs_pack = Pack::parse(&bytes).unwrap();
    let mut vfs = Vfs::new(vfs_pack, 0);
    let mut f = vfs
        .open(b"/", b"/var/task/data/b.bin", O_RDONLY | O_CLOEXEC, 0, 0)
        .unwrap();
    assert_eq!(f.kind(), NodeKind::Regular);
    let mut buf = vec![0u8; 4000];
    assert_eq!(f.read(&vfs, &mut buf), Ok(4000));
    assert_eq!(&buf[..], &big[..4000]);
    assert_eq!(f.read(&vfs, &mut buf), Ok(4000));
    assert_eq!(f.read(&vfs, &mut buf), Ok(2000));
    assert_eq!(&buf[..2000], &big[8000..]);
    assert_eq!(f.read(&vfs, &mut buf), Ok(0), "at the end");
    assert_eq!(f.seek(&vfs, 10, SEEK_SET), Ok(10));
    assert_eq!(f.seek(&vfs, -4, SEEK_CUR), Ok(6));
    assert_eq!(f.seek(&vfs, -1, SEEK_END), Ok(9999));
    assert_eq!(f.seek(&vfs, -10_001, SEEK_END), Err(Errno::EINVAL));
    assert_eq!(f.seek(&vfs, i64::MAX, SEEK_CUR), Err(Errno::EINVAL));
    assert_eq!(f.seek(&vfs, 0, SEEK_DATA), Err(Errno::EINVAL));
    assert_eq!(f.seek(&vfs, 0, 77), Err(Errno::EINVAL));
    assert_eq!(
        f.read(&vfs, &mut buf[..5]),
        Ok(1),
        "the offset survived the failed seeks"
    );
    assert_eq!(f.seek(&vfs, 20_000, SEEK_SET), Ok(20_000));
    assert_eq!(f.read(&vfs, &mut buf), Ok(0), "past the end");
    assert_eq!(f.pread(&vfs, &mut buf[..3], 100), Ok(3));
    assert_eq!(&buf[..3], &big[100..103]);
    assert_eq!(f.pread(&vfs, &mut buf, u64::MAX), Err(Errno::EINVAL));
    assert_eq!(f.pread(&vfs, &mut buf, 1 << 40), Ok(0));
    assert_eq!(
        f.seek(&vfs, 0, SEEK_CUR),
        Ok(20_000),
        "pread left the offset"
    );
    let (data, offset) = f.pack_bytes().unwrap();
    assert_eq!(data, &big[..]);
    assert_eq!(&bytes[offset as usize..offset as usize + data.len()], data);
    assert_eq!(offset % 4096, 0);
    let st = f.stat(&vfs);
    assert_eq!(
        (st.mode, st.size, st.uid, st.gid),
        (S_IFREG | 0o644, 10_000, UID, GID)
    );
    assert_eq!(
        (st.blocks, st.blksize, st.mtime_ns, st.nlink),
        (24, 4096, 0, 1)
    );
    assert_eq!(f.path(), b"/var/task/data/b.bin");
    let mut empty = vfs.open(b"/var", b"runtime/empty", O_RDONLY, 0, 0).unwrap();
    assert_eq!(empty.read(&vfs, &mut buf), Ok(0));
    assert_eq!(empty.pack_bytes().map(|(d, _)| d.len()), Some(0));
    assert!(vfs
        .open(b"/", b"/var", O_RDONLY, 0, 0)
        .unwrap()
        .pack_bytes()
        .is_none());
    assert_eq!(f.write(&mut vfs, b"x", 0), Err(Errno::EBADF));
    assert_eq!(f.truncate(&mut vfs, 0, 0), Err(Errno::EINVAL));
}

#[test]
fn directories_are_implied_and_listed() {
    let big = big();
    let bytes = sample(&big);
    let vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    assert_eq!(
        names(&vfs.list(b"/", b"/").unwrap()),
        [".", "..", "dev", "tmp", "var"]
    );
    assert_eq!(
        names(&vfs.list(b"/", b"/var/task/data").unwrap()),
        [".", "..", "a.txt", "b.bin"]
    );
    assert_eq!(
        names(&vfs.list(b"/", b"/tmp").unwrap()),
        [".", ".."],
        "the mount hides the pack's tmp"
    );
    let var = vfs.stat(b"/", b"/var", true).unwrap();
    assert_eq!(
        (var.mode, var.nlink),
        (S_IFDIR | 0o755, 4),
        "implied; task and runtime below"
    );
    assert_eq!(
        vfs.stat(b"/", b"/var/task/lib", true).unwrap().mode,
        S_IFDIR | 0o700
    );
    assert_eq!(
        vfs.stat(b"/", b"/", true).unwrap().nlink,
        5,
        "dev, tmp, var"
    );
    let listed = vfs.list(b"/", b"/var/task").unwrap();
    let kinds: Vec<(String, NodeKind)> = listed
        .iter()
        .map(|e| (String::from_utf8(e.name.clone()).unwrap(), e.kind))
        .collect();
    assert!(kinds.contains(&("data".into(), NodeKind::Directory)));
    assert!(kinds.contains(&("bootstrap".into(), NodeKind::Regular)));
    assert!(kinds.contains(&("link_rel".into(), NodeKind::Symlink)));
    let data = vfs.stat(b"/", b"/var/task/data", true).unwrap();
    assert_eq!(
        listed[0].ino,
        vfs.stat(b"/", b"/var/task", true).unwrap().ino
    );
    assert_eq!(listed[1].ino, vfs.stat(b"/", b"/var", true).unwrap().ino);
    assert!(listed
        .iter()
        .any(|e| e.ino == data.ino && e.name == b"data"));
    assert_eq!(
        vfs.list(b"/", b"/var/task/bootstrap").err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        vfs.stat(b"/", b"/proc/cpuinfo", true).err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(vfs.stat(b"/", b"/proc", true).err(), Some(Errno::ENOENT));
    assert_eq!(vfs.stat(b"/", b"/sys", true).err(), Some(Errno::ENOENT));
    assert_eq!(
        vfs.stat(b"/", b"/tmp/hidden", true).err(),
        Some(Errno::ENOENT)
    );
    // Every node has its own inode number.
    let mut inos: Vec<u64> = [
        "/",
        "/var",
        "/var/task",
        "/tmp",
        "/dev",
        "/dev/null",
        "/dev/zero",
        "/var/task/bootstrap",
    ]
    .iter()
    .map(|p| vfs.stat(b"/", p.as_bytes(), false).unwrap().ino)
    .collect();
    inos.sort_unstable();
    inos.dedup();
    assert_eq!(inos.len(), 8);
}

fn parse_dirents(buf: &[u8]) -> Vec<(u64, i64, u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let ino = u64::from_le_bytes(buf[at..at + 8].try_into().unwrap());
        let off = i64::from_le_bytes(buf[at + 8..at + 16].try_into().unwrap());
        let reclen = u16::from_le_bytes([buf[at + 16], buf[at + 17]]) as usize;
        assert_eq!(reclen % 8, 0);
        let name = &buf[at + 19..at + reclen];
        let end = name.iter().position(|&b| b == 0).unwrap();
        out.push((ino, off, buf[at + 18], name[..end].to_vec()));
        at += reclen;
    }
    out
}

#[test]
fn getdents64_resumes_with_a_small_buffer() {
    let big = big();
    let bytes = sample(&big);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    let mut dir = vfs
        .open(b"/", b"/var/task", O_RDONLY | O_DIRECTORY, 0, 0)
        .unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 40];
    assert_eq!(
        dir.getdents64(&vfs, &mut buf[..23]),
        Err(Errno::EINVAL),
        "`.` needs 24 bytes"
    );
    loop {
        let n = dir.getdents64(&vfs, &mut buf).unwrap();
        if n == 0 {
            break;
        }
        let got = parse_dirents(&buf[..n]);
        assert_eq!(got.len(), 1, "one record fits in 40 bytes");
        all.extend(got);
    }
    let listed = vfs.list(b"/", b"/var/task").unwrap();
    assert_eq!(all.len(), listed.len());
    for (i, ((ino, off, d_type, name), entry)) in all.iter().zip(&listed).enumerate() {
        assert_eq!(
            (*ino, d_type, name),
            (entry.ino, &entry.kind.d_type(), &entry.name)
        );
        assert_eq!(*off, i as i64 + 1);
    }
    assert_eq!(all[0].2, DT_DIR);
    assert_eq!(dir.getdents64(&vfs, &mut buf), Ok(0), "stays at the end");
    // A big buffer takes everything at once; rewinding starts again.
    assert_eq!(dir.seek(&vfs, 0, SEEK_SET), Ok(0));
    let mut large = [0u8; 4096];
    let n = dir.getdents64(&vfs, &mut large).unwrap();
    assert_eq!(parse_dirents(&large[..n]).len(), listed.len());
    // telldir/seekdir: a position is an index.
    assert_eq!(dir.seek(&vfs, 3, SEEK_SET), Ok(3));
    assert_eq!(dir.seek(&vfs, 0, SEEK_CUR), Ok(3));
    let n = dir.getdents64(&vfs, &mut buf).unwrap();
    assert_eq!(parse_dirents(&buf[..n])[0].3, listed[3].name);
    assert_eq!(dir.seek(&vfs, -1, SEEK_SET), Err(Errno::EINVAL));
    assert_eq!(dir.seek(&vfs, 0, SEEK_END), Err(Errno::EINVAL));
    let mut dev = vfs.open(b"/", b"/dev", O_RDONLY, 0, 0).unwrap();
    let n = dev.getdents64(&vfs, &mut large).unwrap();
    let devs: Vec<Vec<u8>> = parse_dirents(&large[..n])
        .into_iter()
        .map(|d| d.3)
        .collect();
    assert_eq!(
        devs,
        [
            &b"."[..],
            b"..",
            b"full",
            b"null",
            b"random",
            b"urandom",
            b"zero"
        ]
    );
    let mut file = vfs
        .open(b"/", b"/var/task/bootstrap", O_RDONLY, 0, 0)
        .unwrap();
    assert_eq!(file.getdents64(&vfs, &mut large), Err(Errno::ENOTDIR));
    let mut read_dir = [0u8; 4];
    assert_eq!(dir.read(&vfs, &mut read_dir), Err(Errno::EISDIR));
}

#[test]
fn symlinks_are_followed_and_loops_end() {
    let big = big();
    let bytes = sample(&big);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    let a = vfs.stat(b"/", b"/var/task/data/a.txt", true).unwrap();
    assert_eq!(vfs.stat(b"/var/task", b"link_rel", true), Ok(a));
    let link = vfs.stat(b"/var/task", b"link_rel", false).unwrap();
    assert_eq!((link.mode, link.size), (S_IFLNK | 0o777, 10));
    assert_eq!(vfs.stat(b"/", b"/var/task/link_abs/a.txt", true), Ok(a));
    assert_eq!(vfs.stat(b"/", b"/var/task/up/a.txt", true), Ok(a));
    assert_eq!(
        vfs.readlink(b"/", b"/var/task/link_abs"),
        Ok(b"/var/task/data".to_vec())
    );
    assert_eq!(
        vfs.readlink(b"/", b"/var/task/bootstrap"),
        Err(Errno::EINVAL)
    );
    assert_eq!(vfs.readlink(b"/", b"/var/task/missing"), Err(Errno::ENOENT));
    // `..` after a symlink is the parent of its target.
    assert_eq!(
        vfs.canonical_dir(b"/", b"/var/task/link_abs/.."),
        Ok(b"/var/task".to_vec())
    );
    assert_eq!(
        vfs.canonical_dir(b"/", b"/var/task/totmp/../var"),
        Ok(b"/var".to_vec())
    );
    assert_eq!(
        vfs.canonical_dir(b"/", b"/var/task/up"),
        Ok(b"/var/task/data".to_vec())
    );
    assert_eq!(vfs.stat(b"/", b"/var/task/loop1", true), Err(Errno::ELOOP));
    assert!(vfs.stat(b"/", b"/var/task/loop1", false).is_ok());
    assert_eq!(
        vfs.stat(b"/", b"/var/task/dangling", true),
        Err(Errno::ENOENT)
    );
    let mut f = vfs
        .open(b"/", b"/var/task/link_rel", O_RDONLY, 0, 0)
        .unwrap();
    assert_eq!(read_all(&vfs, &f), b"hello world");
    assert_eq!(f.path(), b"/var/task/data/a.txt");
    assert_eq!(
        vfs.open(b"/", b"/var/task/link_rel", O_RDONLY | O_NOFOLLOW, 0, 0)
            .err(),
        Some(Errno::ELOOP)
    );
    // O_NOFOLLOW applies to the last component only.
    assert!(vfs
        .open(
            b"/",
            b"/var/task/link_abs/a.txt",
            O_RDONLY | O_NOFOLLOW,
            0,
            0
        )
        .is_ok());
    let mut p = vfs
        .open(b"/", b"/var/task/link_rel", O_PATH | O_NOFOLLOW, 0, 0)
        .unwrap();
    assert_eq!(p.kind(), NodeKind::Symlink);
    assert_eq!(p.read(&vfs, &mut [0; 4]), Err(Errno::EBADF));
    assert_eq!(p.seek(&vfs, 0, SEEK_SET), Err(Errno::EBADF));
    assert_eq!(p.stat(&vfs).mode & S_IFMT, S_IFLNK);
    assert_eq!(f.seek(&vfs, 0, SEEK_END), Ok(11));

    // 40 hops resolve, 41 do not.
    let names: Vec<String> = (0..=41).map(|i| alloc::format!("l{i}")).collect();
    let mut entries: Vec<(&str, EntryKind, u32, &[u8])> = vec![("end", File, 0o644, b"!")];
    for i in 0..41 {
        entries.push((&names[i], Link, 0o777, names[i + 1].as_bytes()));
    }
    entries.push((&names[41], Link, 0o777, b"end"));
    let bytes = build(&entries);
    let vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    assert_eq!(
        vfs.stat(b"/", b"/l2", true).map(|s| s.size),
        Ok(1),
        "40 links"
    );
    assert_eq!(vfs.stat(b"/", b"/l1", true), Err(Errno::ELOOP), "41 links");
}

#[test]
fn paths_are_checked() {
    let big = big();
    let bytes = sample(&big);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    let bootstrap = vfs.stat(b"/", b"/var/task/bootstrap", true).unwrap();
    for path in [
        &b"/../../var/./task//bootstrap"[..],
        b"../../var/task/bootstrap",
        b"./../task/bootstrap",
        b"/var/task/data/../bootstrap",
    ] {
        assert_eq!(
            vfs.stat(b"/var/task", path, true),
            Ok(bootstrap),
            "{:?}",
            String::from_utf8_lossy(path)
        );
    }
    assert_eq!(vfs.canonical_dir(b"/", b"/.."), Ok(b"/".to_vec()));
    assert_eq!(vfs.canonical_dir(b"/var", b"../../.."), Ok(b"/".to_vec()));
    assert_eq!(
        vfs.canonical_dir(b"/var", b"task/"),
        Ok(b"/var/task".to_vec())
    );
    assert_eq!(
        vfs.canonical_dir(b"/", b"/var/task/bootstrap"),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(vfs.stat(b"/", b"", true), Err(Errno::ENOENT));
    assert_eq!(
        vfs.stat(b"/", b"/var/task/bootstrap/", true),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(
        vfs.stat(b"/", b"/var/task/bootstrap/x", true),
        Err(Errno::ENOTDIR)
    );
    assert_eq!(
        vfs.stat(b"/", b"/var/task/bootstrap/..", true),
        Err(Errno::ENOTDIR)
    );
    assert!(vfs.stat(b"/", b"/var/task/", true).is_ok());
    assert_eq!(vfs.stat(b"/", b"/var/ta\0sk", true), Err(Errno::EINVAL));
    assert_eq!(vfs.stat(b"/", b"/nope/x", true), Err(Errno::ENOENT));
    // PATH_MAX counts the NUL: 4095 bytes are allowed, 4096 are not.
    let mut long = b"/".repeat(4095);
    assert_eq!(
        vfs.stat(b"/", &long, true).map(|s| s.mode & S_IFMT),
        Ok(S_IFDIR)
    );
    long.push(b'/');
    assert_eq!(vfs.stat(b"/", &long, true), Err(Errno::ENAMETOOLONG));
    assert_eq!(
        vfs.open(b"/", &long, O_RDONLY, 0, 0).err(),
        Some(Errno::ENAMETOOLONG)
    );
    let name = [b'n'; 256];
    assert_eq!(vfs.stat(b"/", &name, true), Err(Errno::ENAMETOOLONG));
    assert_eq!(vfs.stat(b"/", &name[..255], true), Err(Errno::ENOENT));
    let mut tmp_long = b"/tmp/".to_vec();
    tmp_long.extend_from_slice(&name);
    assert_eq!(
        vfs.open(b"/", &tmp_long, O_CREAT | O_WRONLY, 0o644, 0)
            .err(),
        Some(Errno::ENAMETOOLONG)
    );
    assert_eq!(
        vfs.mkdir(b"/", &tmp_long, 0o755, 0),
        Err(Errno::ENAMETOOLONG)
    );
}

#[test]
fn writes_outside_tmp_are_erofs() {
    let big = big();
    let bytes = sample(&big);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1000);
    let t = b"/var/task";
    for flags in [O_WRONLY, O_RDWR, O_RDONLY | O_TRUNC, O_WRONLY | O_CREAT] {
        assert_eq!(
            vfs.open(t, b"bootstrap", flags, 0o644, 0).err(),
            Some(Errno::EROFS),
            "{flags:o}"
        );
    }
    assert_eq!(
        vfs.open(t, b"new", O_WRONLY | O_CREAT, 0o644, 0).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(
        vfs.open(t, b"/new", O_WRONLY | O_CREAT, 0o644, 0).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(
        vfs.open(t, b"/dev/new", O_WRONLY | O_CREAT, 0o644, 0).err(),
        Some(Errno::EROFS)
    );
    assert_eq!(
        vfs.open(t, b"bootstrap", O_WRONLY | O_CREAT | O_EXCL, 0o644, 0)
            .err(),
        Some(Errno::EEXIST)
    );
    assert_eq!(
        vfs.open(t, b"missing/new", O_WRONLY | O_CREAT, 0o644, 0)
            .err(),
        Some(Errno::ENOENT)
    );
    assert_eq!(
        vfs.open(t, b"data", O_RDWR, 0, 0).err(),
        Some(Errno::EISDIR)
    );
    assert_eq!(
        vfs.open(t, b"data", O_RDONLY | O_CREAT, 0, 0).err(),
        Some(Errno::EISDIR)
    );
    assert_eq!(
        vfs.open(b"/", b"/tmp", O_WRONLY, 0, 0).err(),
        Some(Errno::EISDIR)
    );
    assert_eq!(vfs.mkdir(t, b"newdir", 0o755, 0), Err(Errno::EROFS));
    assert_eq!(vfs.mkdir(t, b"data", 0o755, 0), Err(Errno::EEXIST));
    assert_eq!(vfs.mkdir(t, b"/", 0o755, 0), Err(Errno::EEXIST));
    assert_eq!(vfs.unlink(t, b"bootstrap"), Err(Errno::EROFS));
    assert_eq!(vfs.unlink(t, b"link_rel"), Err(Errno::EROFS));
    assert_eq!(vfs.unlink(t, b"data"), Err(Errno::EISDIR));
    assert_eq!(vfs.unlink(b"/", b"/dev/null"), Err(Errno::EROFS));
    assert_eq!(vfs.rmdir(t, b"lib"), Err(Errno::EROFS));
    assert_eq!(vfs.rmdir(b"/", b"/"), Err(Errno::EBUSY));
    assert_eq!(vfs.rmdir(b"/", b"/dev"), Err(Errno::EROFS));
    assert_eq!(vfs.rename(t, b"bootstrap", b"/tmp/b"), Err(Errno::EROFS));
    vfs.open(b"/", b"/tmp/f", O_CREAT | O_WRONLY, 0o644, 0)
        .unwrap();
    assert_eq!(
        vfs.rename(b"/", b"/tmp/f", b"/var/task/f"),
        Err(Errno::EROFS)
    );
    assert_eq!(
        vfs.rename(b"/", b"/tmp/f", b"/var/task/bootstrap"),
        Err(Errno::EROFS)
    );
    assert!(
        vfs.stat(b"/", b"/tmp/f", true).is_ok(),
        "a refused rename changes nothing"
    );
    assert_eq!(vfs.access(t, b"bootstrap", W_OK), Err(Errno::EROFS));
    assert_eq!(vfs.access(t, b"data", W_OK), Err(Errno::EROFS));
    assert_eq!(
        vfs.open(t, b"/tmp/../var/task/x", O_CREAT | O_WRONLY, 0o644, 0)
            .err(),
        Some(Errno::EROFS)
    );
}
