//! Permissions, `/dev`, open flags and odd packages.

use alloc::vec::Vec;
use mayfly_proto::pack::{EntryKind, Pack};

use super::tests::{big, build, names, sample};
use super::*;
use crate::abi::*;
use EntryKind::File;

#[test]
fn access_and_permissions_use_the_owner_bits() {
    let big = big();
    let bytes = sample(&big);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1000);
    let t = b"/var/task";
    assert_eq!(vfs.access(t, b"bootstrap", R_OK | X_OK), Ok(()));
    assert_eq!(vfs.access(t, b"data/a.txt", X_OK), Err(Errno::EACCES));
    assert_eq!(vfs.access(t, b"secret", F_OK), Ok(()));
    assert_eq!(vfs.access(t, b"secret", R_OK), Err(Errno::EACCES));
    assert_eq!(
        vfs.open(t, b"secret", O_RDONLY, 0, 0).err(),
        Some(Errno::EACCES)
    );
    assert!(
        vfs.open(t, b"secret", O_PATH, 0, 0).is_ok(),
        "O_PATH needs no permission"
    );
    assert_eq!(vfs.access(t, b"missing", F_OK), Err(Errno::ENOENT));
    assert_eq!(vfs.access(t, b"bootstrap", 8), Err(Errno::EINVAL));
    assert_eq!(vfs.access(t, b"link_rel", R_OK), Ok(()), "follows symlinks");
    assert_eq!(vfs.access(b"/", b"/dev/null", R_OK | W_OK), Ok(()));
    assert_eq!(vfs.access(b"/", b"/tmp", R_OK | W_OK | X_OK), Ok(()));
    vfs.open(b"/", b"/tmp/ro", O_CREAT | O_WRONLY, 0o444, 0)
        .unwrap();
    assert_eq!(vfs.access(b"/", b"/tmp/ro", W_OK), Err(Errno::EACCES));
    assert_eq!(
        vfs.open(b"/", b"/tmp/ro", O_WRONLY, 0, 0).err(),
        Some(Errno::EACCES)
    );
    assert!(vfs.open(b"/", b"/tmp/ro", O_RDONLY, 0, 0).is_ok());
}

#[test]
fn devices_behave_like_linux() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    let mut buf = [7u8; 64];
    let mut null = vfs
        .open(b"/", b"/dev/null", O_RDWR | O_TRUNC, 0, 0)
        .unwrap();
    assert_eq!(null.kind(), NodeKind::CharDevice(Device::Null));
    assert_eq!(null.read(&vfs, &mut buf), Ok(0));
    assert_eq!(null.write(&mut vfs, &[1; 100], 0), Ok(100));
    assert_eq!(null.seek(&vfs, 100, SEEK_SET), Ok(0));
    assert_eq!(null.stat(&vfs).rdev, makedev(1, 3));
    assert_eq!(null.stat(&vfs).mode, S_IFCHR | 0o666);
    let mut zero = vfs.open(b"/dev", b"zero", O_RDWR, 0, 0).unwrap();
    assert_eq!(zero.read(&vfs, &mut buf), Ok(64));
    assert_eq!(buf, [0; 64]);
    assert_eq!(zero.write(&mut vfs, b"abc", 0), Ok(3));
    assert_eq!(zero.pwrite(&mut vfs, b"abc", 5, 0), Ok(3));
    let mut full = vfs.open(b"/", b"/dev/full", O_RDWR, 0, 0).unwrap();
    buf = [7; 64];
    assert_eq!(full.pread(&vfs, &mut buf, 0), Ok(64));
    assert_eq!(buf, [0; 64]);
    assert_eq!(full.write(&mut vfs, b"x", 0), Err(Errno::ENOSPC));
    for name in [&b"/dev/random"[..], b"/dev/urandom"] {
        let mut r = vfs.open(b"/", name, O_RDONLY, 0, 0).unwrap();
        assert_eq!(r.kind(), NodeKind::CharDevice(Device::Random));
        assert_eq!(
            r.read(&vfs, &mut buf),
            Err(Errno::EIO),
            "the kernel serves these"
        );
    }
    assert_eq!(
        vfs.stat(b"/", b"/dev/urandom", true).unwrap().rdev,
        makedev(1, 9)
    );
    assert_eq!(vfs.stat(b"/", b"/dev/tty", true), Err(Errno::ENOENT));
    assert_eq!(
        vfs.open(b"/", b"/dev/null", O_RDONLY | O_DIRECTORY, 0, 0)
            .err(),
        Some(Errno::ENOTDIR)
    );
    let mut ronly = vfs.open(b"/", b"/dev/null", O_RDONLY, 0, 0).unwrap();
    assert_eq!(ronly.write(&mut vfs, b"x", 0), Err(Errno::EBADF));
    let mut wonly = vfs.open(b"/", b"/dev/zero", O_WRONLY, 0, 0).unwrap();
    assert_eq!(wonly.read(&vfs, &mut buf), Err(Errno::EBADF));
}

#[test]
fn open_flags_are_checked_and_kept() {
    let big = big();
    let bytes = sample(&big);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1000);
    let t = b"/var/task";
    assert_eq!(
        vfs.open(t, b"bootstrap", O_RDONLY | O_DIRECTORY, 0, 0)
            .err(),
        Some(Errno::ENOTDIR)
    );
    assert_eq!(
        vfs.open(t, b"bootstrap", O_PATH | O_DIRECTORY, 0, 0).err(),
        Some(Errno::ENOTDIR)
    );
    assert!(vfs.open(t, b"data", O_RDONLY | O_DIRECTORY, 0, 0).is_ok());
    assert!(vfs
        .open(t, b"link_abs", O_RDONLY | O_DIRECTORY, 0, 0)
        .is_ok());
    assert_eq!(
        vfs.open(b"/", b"/tmp", O_TMPFILE | O_RDWR, 0o600, 0).err(),
        Some(Errno::EOPNOTSUPP)
    );
    assert_eq!(
        vfs.open(t, b"bootstrap", 3, 0, 0).err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        vfs.open(b"/", b"/tmp/d", O_CREAT | O_DIRECTORY, 0o755, 0)
            .err(),
        Some(Errno::EINVAL)
    );
    assert_eq!(
        vfs.open(b"/", b"/tmp/d/", O_CREAT | O_WRONLY, 0o644, 0)
            .err(),
        Some(Errno::EISDIR)
    );
    let accepted =
        O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_LARGEFILE | O_NOCTTY | O_NOATIME | O_DIRECT | O_DSYNC;
    let mut f = vfs.open(t, b"bootstrap", accepted, 0, 0).unwrap();
    assert_eq!(
        f.flags() & O_CLOEXEC,
        O_CLOEXEC,
        "kept for the descriptor table"
    );
    assert_eq!(f.status_flags() & O_CLOEXEC, 0);
    assert_eq!(f.flags() & O_NOCTTY, 0);
    assert_eq!(
        f.status_flags() & (O_NONBLOCK | O_LARGEFILE),
        O_NONBLOCK | O_LARGEFILE
    );
    f.set_status_flags(O_APPEND | O_RDWR | O_DIRECTORY);
    assert_eq!(
        f.status_flags() & (O_APPEND | O_NONBLOCK | O_ACCMODE | O_DIRECTORY),
        O_APPEND
    );
    let mut p = vfs.open(t, b"bootstrap", O_PATH | O_RDWR, 0, 0).unwrap();
    assert_eq!(p.read(&vfs, &mut [0; 4]), Err(Errno::EBADF));
    assert_eq!(p.write(&mut vfs, b"x", 0), Err(Errno::EBADF));
    assert_eq!(p.truncate(&mut vfs, 0, 0), Err(Errno::EBADF));
    assert_eq!(p.stat(&vfs).size, 14, "fstat works on O_PATH");
    let mut d = vfs.open(t, b"data", O_PATH, 0, 0).unwrap();
    assert_eq!(d.getdents64(&vfs, &mut [0; 256]), Err(Errno::EBADF));
}

#[test]
fn a_file_in_the_way_of_a_directory_loses() {
    let bytes = build(&[
        ("a", File, 0o644, b"x"),
        ("a/b", File, 0o644, b"y"),
        ("c/d", File, 0o644, b"z"),
        ("c", File, 0o600, b"w"),
    ]);
    let vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 0);
    assert_eq!(vfs.stat(b"/", b"/a", true).unwrap().mode, S_IFDIR | 0o755);
    assert_eq!(vfs.stat(b"/", b"/a/b", true).unwrap().size, 1);
    assert_eq!(vfs.stat(b"/", b"/c", true).unwrap().mode & S_IFMT, S_IFDIR);
    assert_eq!(names(&vfs.list(b"/", b"/c").unwrap()), [".", "..", "d"]);
}

/// A xorshift step: the same sequence on every run.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn hostile_paths_never_panic() {
    let big = big();
    let bytes = sample(&big);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 4096);
    let long = [b'x'; 300];
    let tokens: [&[u8]; 16] = [
        b"/",
        b"//",
        b".",
        b"..",
        b"tmp",
        b"var",
        b"task",
        b"link_abs",
        b"loop1",
        b"totmp",
        b"up",
        b"d",
        b"bootstrap",
        b"\0",
        &long,
        b"dev",
    ];
    let mut state = 0x1234_5678_9abc_def1u64;
    for _ in 0..20_000 {
        let mut path = Vec::new();
        for _ in 0..xorshift(&mut state) % 12 {
            let token = tokens[(xorshift(&mut state) % 16) as usize];
            path.extend_from_slice(token);
            if xorshift(&mut state) & 1 == 0 {
                path.push(b'/');
            }
        }
        let cwd: &[u8] =
            [&b"/"[..], b"/tmp", b"/var/task", b""][(xorshift(&mut state) % 4) as usize];
        let flags = (xorshift(&mut state) as u32) & !O_TMPFILE;
        let _ = vfs.stat(cwd, &path, flags & 1 == 0);
        let _ = vfs.readlink(cwd, &path);
        let _ = vfs.access(cwd, &path, flags & 7);
        let _ = vfs.canonical_dir(cwd, &path);
        match xorshift(&mut state) % 5 {
            0 => drop(vfs.mkdir(cwd, &path, 0o755, 0)),
            1 => drop(vfs.unlink(cwd, &path)),
            2 => drop(vfs.rmdir(cwd, &path)),
            3 => drop(vfs.rename(cwd, &path, b"/tmp/d")),
            _ => {
                if let Ok(mut f) = vfs.open(cwd, &path, flags, 0o644, 0) {
                    let mut buf = [0u8; 64];
                    let _ = f.write(&mut vfs, b"abc", 0);
                    let _ = f.seek(&vfs, xorshift(&mut state) as i64, (flags >> 8) % 5);
                    if f.kind() != NodeKind::CharDevice(Device::Random) {
                        let _ = f.read(&vfs, &mut buf);
                    }
                    let _ = f.getdents64(&vfs, &mut buf);
                    let _ = f.truncate(&mut vfs, xorshift(&mut state) % 8192, 0);
                }
            }
        }
    }
    assert!(vfs.tmp_used() <= 4096);
}
