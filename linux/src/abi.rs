//! Linux's flag values and structure layouts for x86_64, as plain
//! functions producing bytes: the kernel copies them to the program
//! without any `repr(C)` struct (and so without `unsafe`), and the offsets
//! are pinned by tests against the kernel's UAPI headers
//! (`arch/x86/include/uapi/asm/stat.h`, `include/uapi/linux/stat.h`,
//! `include/linux/dirent.h`, `include/uapi/linux/utsname.h`).
//!
//! ```
//! use mayfly_linux::abi::{self, O_CREAT, O_RDWR};
//! use mayfly_linux::vfs::Stat;
//! let stat = Stat { size: 5, mode: abi::S_IFREG | 0o644, ..Stat::default() };
//! let bytes = abi::stat_bytes(&stat);
//! assert_eq!(&bytes[48..56], &5u64.to_le_bytes()); // st_size
//! assert_eq!(O_CREAT | O_RDWR, 0o102);
//! ```

use crate::vfs::{self, Stat};

/// Open for reading only.
pub const O_RDONLY: u32 = 0;
/// Open for writing only.
pub const O_WRONLY: u32 = 1;
/// Open for reading and writing.
pub const O_RDWR: u32 = 2;
/// The bits holding the access mode.
pub const O_ACCMODE: u32 = 3;
/// Create the file if missing.
pub const O_CREAT: u32 = 0o100;
/// With `O_CREAT`: fail with `EEXIST` if it exists.
pub const O_EXCL: u32 = 0o200;
/// Do not become the controlling terminal (no terminals here: ignored).
pub const O_NOCTTY: u32 = 0o400;
/// Truncate to zero length.
pub const O_TRUNC: u32 = 0o1000;
/// Every write goes to the end.
pub const O_APPEND: u32 = 0o2000;
/// Non-blocking I/O (files never block: kept for `F_GETFL`).
pub const O_NONBLOCK: u32 = 0o4000;
/// Synchronized data writes (memory is always synchronized: ignored).
pub const O_DSYNC: u32 = 0o10000;
/// Signal-driven I/O (`F_SETFL` only).
pub const O_ASYNC: u32 = 0o20000;
/// Direct I/O (no page cache to bypass: ignored).
pub const O_DIRECT: u32 = 0o40000;
/// Large-file offsets (always the case on x86_64).
pub const O_LARGEFILE: u32 = 0o100000;
/// Fail with `ENOTDIR` unless a directory.
pub const O_DIRECTORY: u32 = 0o200000;
/// Fail with `ELOOP` if the last component is a symlink.
pub const O_NOFOLLOW: u32 = 0o400000;
/// Do not update the access time (none is kept: ignored).
pub const O_NOATIME: u32 = 0o1000000;
/// Close on `execve` (the descriptor table's business).
pub const O_CLOEXEC: u32 = 0o2000000;
/// Fully synchronized writes (ignored, like `O_DSYNC`).
pub const O_SYNC: u32 = 0o4010000;
/// A handle on the path only: no reading or writing.
pub const O_PATH: u32 = 0o10000000;
/// An unnamed temporary file (includes `O_DIRECTORY`; not supported).
pub const O_TMPFILE: u32 = 0o20200000;

/// The `dirfd` meaning "the working directory".
pub const AT_FDCWD: i32 = -100;
/// Do not follow a final symlink.
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
/// `unlinkat` removes a directory.
pub const AT_REMOVEDIR: u32 = 0x200;
/// `faccessat`: check with the effective ids (the same here).
pub const AT_EACCESS: u32 = 0x200;
/// Follow a final symlink (`linkat`).
pub const AT_SYMLINK_FOLLOW: u32 = 0x400;
/// Do not automount (nothing automounts: ignored).
pub const AT_NO_AUTOMOUNT: u32 = 0x800;
/// An empty path means `dirfd` itself.
pub const AT_EMPTY_PATH: u32 = 0x1000;

/// The bits holding a file's type in a mode.
pub const S_IFMT: u32 = 0o170000;
/// A socket.
pub const S_IFSOCK: u32 = 0o140000;
/// A symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// A regular file.
pub const S_IFREG: u32 = 0o100000;
/// A block device.
pub const S_IFBLK: u32 = 0o060000;
/// A directory.
pub const S_IFDIR: u32 = 0o040000;
/// A character device.
pub const S_IFCHR: u32 = 0o020000;
/// A pipe.
pub const S_IFIFO: u32 = 0o010000;

/// Seek from the start.
pub const SEEK_SET: u32 = 0;
/// Seek from the current offset.
pub const SEEK_CUR: u32 = 1;
/// Seek from the end.
pub const SEEK_END: u32 = 2;
/// Seek to the next data (not supported: `EINVAL`).
pub const SEEK_DATA: u32 = 3;
/// Seek to the next hole (not supported: `EINVAL`).
pub const SEEK_HOLE: u32 = 4;

/// `access`: does it exist.
pub const F_OK: u32 = 0;
/// `access`: may it be executed (searched, for a directory).
pub const X_OK: u32 = 1;
/// `access`: may it be written.
pub const W_OK: u32 = 2;
/// `access`: may it be read.
pub const R_OK: u32 = 4;

/// `fcntl`: duplicate to the lowest free descriptor ≥ the argument.
pub const F_DUPFD: u32 = 0;
/// `fcntl`: read the descriptor flags (`FD_CLOEXEC`).
pub const F_GETFD: u32 = 1;
/// `fcntl`: set the descriptor flags.
pub const F_SETFD: u32 = 2;
/// `fcntl`: read the status flags and access mode.
pub const F_GETFL: u32 = 3;
/// `fcntl`: set the status flags (`O_APPEND`, `O_NONBLOCK`).
pub const F_SETFL: u32 = 4;
/// `fcntl`: like `F_DUPFD`, with close-on-exec set.
pub const F_DUPFD_CLOEXEC: u32 = 1030;
/// The descriptor flag: close on `execve`.
pub const FD_CLOEXEC: u32 = 1;

/// `d_type`: unknown.
pub const DT_UNKNOWN: u8 = 0;
/// `d_type`: a pipe.
pub const DT_FIFO: u8 = 1;
/// `d_type`: a character device.
pub const DT_CHR: u8 = 2;
/// `d_type`: a directory.
pub const DT_DIR: u8 = 4;
/// `d_type`: a block device.
pub const DT_BLK: u8 = 6;
/// `d_type`: a regular file.
pub const DT_REG: u8 = 8;
/// `d_type`: a symbolic link.
pub const DT_LNK: u8 = 10;
/// `d_type`: a socket.
pub const DT_SOCK: u8 = 12;

/// `statx` mask: what [`statx_bytes`] always fills (type, mode, nlink,
/// uid, gid, atime, mtime, ctime, ino, size, blocks).
pub const STATX_BASIC_STATS: u32 = 0x7ff;

/// The size of `struct stat` on x86_64.
pub const STAT_SIZE: usize = 144;
/// The size of `struct statx`.
pub const STATX_SIZE: usize = 256;
/// The size of `struct utsname` (six fields of 65 bytes).
pub const UTSNAME_SIZE: usize = 390;
/// The bytes of a `linux_dirent64` before its name.
pub const DIRENT64_HEADER: usize = 19;

/// A device number as glibc's `makedev` encodes it (and `st_rdev` holds).
pub const fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (major as u64, minor as u64);
    ((major & 0xffff_f000) << 32)
        | ((major & 0xfff) << 8)
        | ((minor & 0xffff_ff00) << 12)
        | (minor & 0xff)
}

/// The major number of a device number made by [`makedev`].
pub const fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

/// The minor number of a device number made by [`makedev`].
pub const fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

fn nsec_parts(ns: u64) -> (i64, i64) {
    ((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64)
}

fn clamp_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `struct stat` (x86_64) for `s`: atime and ctime are its mtime, since
/// only one time is kept; `st_dev` is [`vfs::device_of`] its inode.
pub fn stat_bytes(s: &Stat) -> [u8; STAT_SIZE] {
    let mut b = [0u8; STAT_SIZE];
    put(&mut b, 0, &vfs::device_of(s.ino).to_le_bytes());
    put(&mut b, 8, &s.ino.to_le_bytes());
    put(&mut b, 16, &s.nlink.to_le_bytes());
    put(&mut b, 24, &s.mode.to_le_bytes());
    put(&mut b, 28, &s.uid.to_le_bytes());
    put(&mut b, 32, &s.gid.to_le_bytes());
    put(&mut b, 40, &s.rdev.to_le_bytes());
    put(&mut b, 48, &clamp_i64(s.size).to_le_bytes());
    put(&mut b, 56, &clamp_i64(s.blksize).to_le_bytes());
    put(&mut b, 64, &clamp_i64(s.blocks).to_le_bytes());
    let (sec, nsec) = nsec_parts(s.mtime_ns);
    for at in [72, 88, 104] {
        put(&mut b, at, &sec.to_le_bytes());
        put(&mut b, at + 8, &nsec.to_le_bytes());
    }
    b
}

/// `struct statx` for `s`. Like Linux, the basic statistics are filled
/// whatever `mask` asked for, and `stx_mask` says so; nothing beyond them
/// (no birth time) is claimed, so Rust's `created()` says "unsupported".
pub fn statx_bytes(s: &Stat, mask: u32) -> [u8; STATX_SIZE] {
    // Linux's answer does not depend on the request for these fields.
    let _ = mask;
    let mut b = [0u8; STATX_SIZE];
    put(&mut b, 0, &STATX_BASIC_STATS.to_le_bytes());
    put(
        &mut b,
        4,
        &(s.blksize.min(u32::MAX as u64) as u32).to_le_bytes(),
    );
    put(
        &mut b,
        16,
        &(s.nlink.min(u32::MAX as u64) as u32).to_le_bytes(),
    );
    put(&mut b, 20, &s.uid.to_le_bytes());
    put(&mut b, 24, &s.gid.to_le_bytes());
    put(&mut b, 28, &((s.mode & 0xffff) as u16).to_le_bytes());
    put(&mut b, 32, &s.ino.to_le_bytes());
    put(&mut b, 40, &s.size.to_le_bytes());
    put(&mut b, 48, &s.blocks.to_le_bytes());
    let (sec, nsec) = nsec_parts(s.mtime_ns);
    // atime, (btime left zero), ctime, mtime: statx_timestamp is
    // { i64 tv_sec; u32 tv_nsec; i32 reserved }.
    for at in [64, 96, 112] {
        put(&mut b, at, &sec.to_le_bytes());
        put(&mut b, at + 8, &(nsec as u32).to_le_bytes());
    }
    put(&mut b, 128, &major(s.rdev).to_le_bytes());
    put(&mut b, 132, &minor(s.rdev).to_le_bytes());
    let dev = vfs::device_of(s.ino);
    put(&mut b, 136, &major(dev).to_le_bytes());
    put(&mut b, 140, &minor(dev).to_le_bytes());
    b
}

/// `struct timespec` (or `timeval`: the same two 64-bit fields).
pub fn timespec_bytes(sec: i64, nsec: i64) -> [u8; 16] {
    let mut b = [0u8; 16];
    put(&mut b, 0, &sec.to_le_bytes());
    put(&mut b, 8, &nsec.to_le_bytes());
    b
}

/// Reads a `struct timespec` from the first 16 bytes of `b` (`None` when
/// shorter). The values are as the program wrote them: checking `tv_nsec`
/// is the caller's, since `utimensat` gives some values meanings.
pub fn read_timespec(b: &[u8]) -> Option<(i64, i64)> {
    let sec = b.get(0..8)?.try_into().ok()?;
    let nsec = b.get(8..16)?.try_into().ok()?;
    Some((i64::from_le_bytes(sec), i64::from_le_bytes(nsec)))
}

/// `struct utsname`: six NUL-padded fields of 65 bytes; each string is
/// cut to 64 bytes so that its NUL always fits.
pub fn utsname_bytes(
    sysname: &str,
    nodename: &str,
    release: &str,
    version: &str,
    machine: &str,
    domain: &str,
) -> [u8; UTSNAME_SIZE] {
    let mut b = [0u8; UTSNAME_SIZE];
    for (i, field) in [sysname, nodename, release, version, machine, domain]
        .iter()
        .enumerate()
    {
        let bytes = field.as_bytes();
        let len = bytes.len().min(64);
        put(&mut b, i * 65, &bytes[..len]);
    }
    b
}

/// The length of the `linux_dirent64` record for a name of `name_len`
/// bytes: header, name, NUL, padded to 8.
pub const fn dirent64_len(name_len: usize) -> usize {
    (DIRENT64_HEADER + name_len + 1 + 7) & !7
}

/// Writes one `linux_dirent64` at the start of `buf` and returns its
/// length, or `None` (writing nothing) when `buf` is too short. `off` is
/// the position after this record, as `d_off` means.
pub fn write_dirent64(
    buf: &mut [u8],
    ino: u64,
    off: i64,
    d_type: u8,
    name: &[u8],
) -> Option<usize> {
    let len = dirent64_len(name.len());
    let rec = buf.get_mut(..len)?;
    rec.fill(0);
    put(rec, 0, &ino.to_le_bytes());
    put(rec, 8, &off.to_le_bytes());
    put(rec, 16, &u16::try_from(len).ok()?.to_le_bytes());
    put(rec, 18, &[d_type]);
    put(rec, DIRENT64_HEADER, name);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn sample() -> Stat {
        Stat {
            ino: 0x1122,
            mode: S_IFREG | 0o640,
            nlink: 3,
            uid: 993,
            gid: 990,
            size: 5000,
            blksize: 4096,
            blocks: 16,
            rdev: makedev(1, 3),
            mtime_ns: 7_000_000_123,
        }
    }

    #[test]
    fn stat_matches_the_x86_64_layout() {
        // arch/x86/include/uapi/asm/stat.h, struct stat (x86_64).
        let s = sample();
        let b = stat_bytes(&s);
        assert_eq!(b.len(), 144);
        assert_eq!(u64_at(&b, 0), vfs::device_of(s.ino));
        assert_eq!(u64_at(&b, 8), 0x1122);
        assert_eq!(u64_at(&b, 16), 3);
        assert_eq!(u32_at(&b, 24), S_IFREG | 0o640);
        assert_eq!(
            (u32_at(&b, 28), u32_at(&b, 32), u32_at(&b, 36)),
            (993, 990, 0)
        );
        assert_eq!(u64_at(&b, 40), 0x103);
        assert_eq!(u64_at(&b, 48), 5000);
        assert_eq!(u64_at(&b, 56), 4096);
        assert_eq!(u64_at(&b, 64), 16);
        for at in [72, 88, 104] {
            assert_eq!((u64_at(&b, at), u64_at(&b, at + 8)), (7, 123), "{at}");
        }
        assert!(b[120..].iter().all(|&x| x == 0));
        // A size over i64::MAX cannot be negative.
        let huge = stat_bytes(&Stat {
            size: u64::MAX,
            ..s
        });
        assert_eq!(u64_at(&huge, 48), i64::MAX as u64);
    }

    #[test]
    fn statx_matches_the_uapi_layout() {
        // include/uapi/linux/stat.h, struct statx.
        let s = sample();
        let b = statx_bytes(&s, 0xfff);
        assert_eq!(b.len(), 256);
        assert_eq!(u32_at(&b, 0), STATX_BASIC_STATS);
        assert_eq!(u32_at(&b, 4), 4096);
        assert_eq!(u64_at(&b, 8), 0);
        assert_eq!(u32_at(&b, 16), 3);
        assert_eq!((u32_at(&b, 20), u32_at(&b, 24)), (993, 990));
        assert_eq!(u16::from_le_bytes([b[28], b[29]]), (S_IFREG | 0o640) as u16);
        assert_eq!(u64_at(&b, 32), 0x1122);
        assert_eq!(u64_at(&b, 40), 5000);
        assert_eq!(u64_at(&b, 48), 16);
        for at in [64, 96, 112] {
            assert_eq!((u64_at(&b, at), u32_at(&b, at + 8)), (7, 123), "{at}");
            assert_eq!(u32_at(&b, at + 12), 0);
        }
        assert_eq!(u64_at(&b, 80), 0, "no birth time");
        assert_eq!((u32_at(&b, 128), u32_at(&b, 132)), (1, 3));
        let dev = vfs::device_of(s.ino);
        assert_eq!((u32_at(&b, 136), u32_at(&b, 140)), (major(dev), minor(dev)));
        assert!(b[144..].iter().all(|&x| x == 0));
    }

    #[test]
    fn device_numbers_round_trip() {
        for (ma, mi) in [
            (0, 0),
            (1, 9),
            (259, 70000),
            (0xfffff, 0xffffff),
            (4095, 255),
        ] {
            let d = makedev(ma, mi);
            assert_eq!((major(d), minor(d)), (ma, mi));
        }
        assert_eq!(makedev(1, 5), 0x105);
    }

    #[test]
    fn timespecs_round_trip_and_short_input_is_none() {
        let b = timespec_bytes(-3, 999_999_999);
        assert_eq!(read_timespec(&b), Some((-3, 999_999_999)));
        assert_eq!(read_timespec(&b[..15]), None);
        assert_eq!(read_timespec(&[]), None);
    }

    #[test]
    fn utsname_fields_are_padded_and_cut() {
        let long = "x".repeat(100);
        let b = utsname_bytes("Linux", &long, "5.10.0", "#1", "x86_64", "");
        assert_eq!(&b[0..6], b"Linux\0");
        assert!(b[65..129].iter().all(|&x| x == b'x'));
        assert_eq!(b[129], 0, "a cut field keeps its NUL");
        assert_eq!(&b[130..137], b"5.10.0\0");
        assert_eq!(&b[260..267], b"x86_64\0");
        assert!(b[325..].iter().all(|&x| x == 0));
    }

    #[test]
    fn dirent64_records_are_padded_to_8() {
        assert_eq!(dirent64_len(1), 24);
        assert_eq!(dirent64_len(4), 24);
        assert_eq!(dirent64_len(5), 32);
        let mut buf = [0xaau8; 32];
        assert_eq!(write_dirent64(&mut buf, 7, 2, DT_REG, b"hello"), Some(32));
        assert_eq!(u64_at(&buf, 0), 7);
        assert_eq!(u64_at(&buf, 8), 2);
        assert_eq!(u16::from_le_bytes([buf[16], buf[17]]), 32);
        assert_eq!(buf[18], DT_REG);
        assert_eq!(&buf[19..25], b"hello\0");
        assert!(buf[25..].iter().all(|&x| x == 0));
        let mut small = [0u8; 31];
        assert_eq!(write_dirent64(&mut small, 7, 2, DT_REG, b"hello"), None);
        assert!(small.iter().all(|&x| x == 0));
    }
}
