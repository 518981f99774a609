//! Memory: mmap, munmap, mprotect, brk, madvise. The regions are
//! `mayfly_linux::vma`'s bookkeeping; frames come on first touch, so what
//! a program reserves costs nothing until it is used.

use mayfly_linux::errno::{Errno, SysResult};
use mayfly_linux::vfs::NodeKind;
use mayfly_linux::vma::{Backing, MAP_ANONYMOUS, PAGE_SIZE};

use super::Args;
use crate::linux::process::{File, Process, PACK_SOURCE};

/// mmap: anonymous memory, or a file of the package (read from the pack
/// on first touch), or a file of /tmp (copied at once: a shared mapping
/// of a /tmp file does not write back).
pub fn mmap(p: &mut Process, a: &Args) -> SysResult {
    let (addr, len, prot, flags, fd, offset) =
        (a[0], a[1], a[2] as u32, a[3] as u32, a[4] as i32, a[5]);
    if flags & MAP_ANONYMOUS != 0 {
        let (at, replaced) = p.space.mmap(addr, len, prot, flags, Backing::Anonymous)?;
        for range in replaced {
            p.release(range);
        }
        return Ok(at);
    }
    if offset % PAGE_SIZE != 0 {
        return Err(Errno::EINVAL);
    }
    let file = p.fds.get(fd)?.clone();
    let file = file.borrow();
    let File::Node(open) = &*file else {
        return Err(Errno::ENODEV);
    };
    if open.kind() != NodeKind::Regular {
        return Err(Errno::ENODEV);
    }
    if let Some((bytes, pack_offset)) = open.pack_bytes() {
        // `start` is filled in by the address space with the address it
        // chooses.
        let available = (bytes.len() as u64).saturating_sub(offset).min(len);
        let backing = Backing::File {
            source: PACK_SOURCE,
            start: 0,
            offset: pack_offset + offset,
            size: available,
        };
        let (at, replaced) = p.space.mmap(addr, len, prot, flags, backing)?;
        for range in replaced {
            p.release(range);
        }
        return Ok(at);
    }
    let (at, replaced) = p.space.mmap(addr, len, prot, flags, Backing::Anonymous)?;
    for range in replaced {
        p.release(range);
    }
    {
        {
            let size = open.stat(&p.vfs).size;
            let available = size.saturating_sub(offset).min(len) as usize;
            let mut buf = alloc::vec![0u8; 64 * 1024];
            let mut done = 0usize;
            while done < available {
                let n = (available - done).min(buf.len());
                let got = open.pread(&p.vfs, &mut buf[..n], offset + done as u64)?;
                if got == 0 {
                    break;
                }
                p.write_user(at + done as u64, &buf[..got])?;
                done += got;
            }
        }
    }
    Ok(at)
}

/// munmap.
pub fn munmap(p: &mut Process, a: &Args) -> SysResult {
    for range in p.space.munmap(a[0], a[1])? {
        p.release(range);
    }
    Ok(0)
}

/// mprotect.
pub fn mprotect(p: &mut Process, a: &Args) -> SysResult {
    for (range, prot) in p.space.mprotect(a[0], a[1], a[2] as u32)? {
        p.reprotect(range, prot);
    }
    Ok(0)
}

/// brk: the program break moves within the heap region; shrinking frees.
pub fn brk(p: &mut Process, a: &Args) -> SysResult {
    let (now, released) = p.space.brk(a[0]);
    for range in released {
        p.release(range);
    }
    Ok(now)
}

/// madvise: MADV_DONTNEED drops the pages (they read zero, or the file
/// again, next time); the other advice is accepted.
pub fn madvise(p: &mut Process, a: &Args) -> SysResult {
    const MADV_DONTNEED: u64 = 4;
    const MADV_FREE: u64 = 8;
    if !a[0].is_multiple_of(PAGE_SIZE) {
        return Err(Errno::EINVAL);
    }
    if a[2] == MADV_DONTNEED || a[2] == MADV_FREE {
        let len = a[1].checked_add(PAGE_SIZE - 1).ok_or(Errno::EINVAL)? & !(PAGE_SIZE - 1);
        let end = a[0].checked_add(len).ok_or(Errno::EINVAL)?;
        p.space.check(a[0], len, false).map_err(|_| Errno::ENOMEM)?;
        p.release(a[0]..end);
    }
    Ok(0)
}
