//! `/tmp` files stored in chunks: many chunks byte-exact, writes and
//! reads across chunk boundaries, truncating within a chunk, and the limit
//! reached exactly.

use alloc::vec;
use alloc::vec::Vec;
use mayfly_proto::pack::Pack;

use super::tmpfs::CHUNK;
use crate::abi::*;
use crate::errno::Errno;
use crate::vfs::tests::{build, read_all};
use crate::vfs::Vfs;

const RW: u32 = O_CREAT | O_RDWR;

/// A byte pattern that differs from chunk to chunk and within one.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn a_file_of_many_chunks_is_byte_exact() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 64 << 20);
    let mut f = vfs.open(b"/", b"/tmp/big", RW, 0o644, 0).unwrap();
    let want = pattern(37 * CHUNK + 12_345, 1);
    // Appended in uneven pieces, so the pieces straddle chunk boundaries.
    for piece in want.chunks(7_777) {
        assert_eq!(f.write(&mut vfs, piece, 0), Ok(piece.len()));
    }
    assert_eq!(vfs.tmp_used(), want.len() as u64);
    assert_eq!(f.stat(&vfs).size, want.len() as u64);
    assert!(read_all(&vfs, &f) == want);
    // Read back in uneven pieces at odd offsets, one past the end.
    let mut buf = vec![0u8; 3 * CHUNK + 1];
    for &off in &[0, CHUNK - 1, 5 * CHUNK, 36 * CHUNK + 3] {
        let n = f.pread(&vfs, &mut buf, off as u64).unwrap();
        let end = (off + buf.len()).min(want.len());
        assert_eq!(n, end - off);
        assert!(buf[..n] == want[off..end]);
    }
    assert_eq!(f.pread(&vfs, &mut buf, want.len() as u64), Ok(0));
    assert_eq!(f.pread(&vfs, &mut buf, i64::MAX as u64), Ok(0));
    drop(f);
    vfs.unlink(b"/", b"/tmp/big").unwrap();
    assert_eq!(vfs.tmp_used(), 0);
}

#[test]
fn writes_straddling_chunk_boundaries_land_exactly() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1 << 20);
    let mut f = vfs.open(b"/", b"/tmp/s", RW, 0o644, 0).unwrap();
    let mut model = vec![0u8; 0];
    let cases: [(usize, usize); 6] = [
        (CHUNK - 3, 6),               // across the first boundary, sparse
        (0, 10),                      // the short first chunk, rewritten
        (3 * CHUNK - 1, CHUNK + 2),   // one whole chunk and a byte each side
        (2 * CHUNK, 1),               // a chunk's first byte
        (CHUNK - 1, 1),               // a chunk's last byte
        (7 * CHUNK + 100, 2 * CHUNK), // far past the end: zeros between
    ];
    for (seed, &(off, len)) in cases.iter().enumerate() {
        let data = pattern(len, seed as u32 + 10);
        assert_eq!(f.pwrite(&mut vfs, &data, off as u64, 0), Ok(len));
        if model.len() < off + len {
            model.resize(off + len, 0);
        }
        model[off..off + len].copy_from_slice(&data);
        assert!(read_all(&vfs, &f) == model, "after writing {len} at {off}");
        assert_eq!(vfs.tmp_used(), model.len() as u64);
    }
}

#[test]
fn truncating_within_a_chunk_then_regrowing_reads_zeros() {
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), 1 << 20);
    let mut f = vfs.open(b"/", b"/tmp/t", RW, 0o644, 0).unwrap();
    let data = pattern(5 * CHUNK, 3);
    assert_eq!(f.write(&mut vfs, &data, 0), Ok(data.len()));
    // Down into the middle of the third chunk, then up again by truncate.
    let cut = 2 * CHUNK + 1000;
    f.truncate(&mut vfs, cut as u64, 0).unwrap();
    assert_eq!(vfs.tmp_used(), cut as u64);
    assert!(read_all(&vfs, &f) == data[..cut]);
    f.truncate(&mut vfs, 4 * CHUNK as u64, 0).unwrap();
    let mut want = data[..cut].to_vec();
    want.resize(4 * CHUNK, 0);
    assert!(read_all(&vfs, &f) == want);
    // Down again, then up by a write past the end.
    f.truncate(&mut vfs, 10, 0).unwrap();
    assert_eq!(f.pwrite(&mut vfs, b"end", CHUNK as u64 + 5, 0), Ok(3));
    let mut want = data[..10].to_vec();
    want.resize(CHUNK + 5, 0);
    want.extend_from_slice(b"end");
    assert!(read_all(&vfs, &f) == want);
    assert_eq!(vfs.tmp_used(), want.len() as u64);
    // To nothing and back: all zeros.
    f.truncate(&mut vfs, 0, 0).unwrap();
    f.truncate(&mut vfs, 100, 0).unwrap();
    assert_eq!(read_all(&vfs, &f), [0; 100]);
    assert_eq!(vfs.tmp_used(), 100);
}

#[test]
fn a_small_limit_fills_exactly() {
    let limit = 3 * CHUNK + 17;
    let bytes = build(&[]);
    let mut vfs = Vfs::new(Pack::parse(&bytes).unwrap(), limit as u64);
    let mut f = vfs.open(b"/", b"/tmp/a", RW, 0o644, 0).unwrap();
    let data = pattern(limit + 1000, 4);
    let mut done = 0;
    loop {
        match f.write(&mut vfs, &data[done..(done + 4096).min(data.len())], 0) {
            Ok(n) => done += n,
            Err(e) => {
                assert_eq!(e, Errno::ENOSPC);
                break;
            }
        }
    }
    assert_eq!(done, limit, "exactly the limit");
    assert_eq!(vfs.tmp_used(), limit as u64);
    assert!(read_all(&vfs, &f) == data[..limit]);
    // Another file gets nothing; freeing a chunk's worth lets it have that.
    let mut g = vfs.open(b"/", b"/tmp/b", RW, 0o644, 0).unwrap();
    assert_eq!(g.write(&mut vfs, b"x", 0), Err(Errno::ENOSPC));
    assert_eq!(g.truncate(&mut vfs, 1, 0), Err(Errno::ENOSPC));
    f.truncate(&mut vfs, (2 * CHUNK) as u64, 0).unwrap();
    assert_eq!(g.truncate(&mut vfs, (CHUNK + 17) as u64, 0), Ok(()));
    assert_eq!(vfs.tmp_used(), limit as u64);
    let end = (CHUNK + 17) as u64;
    assert_eq!(g.pwrite(&mut vfs, b"y", end, 0), Err(Errno::ENOSPC));
    assert_eq!(g.pwrite(&mut vfs, b"yy", end - 1, 0), Ok(1), "cut short");
    assert_eq!(read_all(&vfs, &g).len(), CHUNK + 17);
    // A pwrite far past the end of a full /tmp allocates nothing.
    assert_eq!(f.pwrite(&mut vfs, b"z", 1 << 40, 0), Err(Errno::ENOSPC));
    assert_eq!(f.stat(&vfs).size, (2 * CHUNK) as u64);
}
