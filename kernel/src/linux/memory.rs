//! Demand paging and the kernel's access to the program's memory.
//!
//! A page gets a frame when it is first touched: by the program (a page
//! fault, [`Process::fault_in`]) or by the kernel on its behalf (a syscall
//! that reads or writes a buffer). The kernel never touches the program's
//! addresses directly: every access checks the regions first (so a bad
//! pointer is `EFAULT`, not a kernel fault) and goes through the frame's
//! alias address, page by page.

use alloc::vec::Vec;

use mayfly_linux::errno::{Errno, SysResult};
use mayfly_linux::vma::{PAGE_SIZE, PROT_EXEC, PROT_READ, PROT_WRITE};

use super::paging::{self, PageState};
use super::process::{Process, PACK_SOURCE};
use crate::heap;

/// Why a page could not be made accessible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultError {
    /// No region there (SEGV_MAPERR).
    Unmapped,
    /// The region does not allow the access (SEGV_ACCERR).
    Denied,
    /// No frame left: the program touched all the VM's memory.
    OutOfMemory,
}

impl Process {
    /// Makes the page holding `addr` accessible for the access the program
    /// (or the kernel on its behalf) attempted, giving it a frame filled
    /// from its region's backing.
    pub fn fault_in(&mut self, addr: u64, write: bool, fetch: bool) -> Result<(), FaultError> {
        let page = addr & !(PAGE_SIZE - 1);
        let region = self.space.find(addr).ok_or(FaultError::Unmapped)?;
        let prot = region.prot;
        let allowed = if write {
            prot & PROT_WRITE != 0
        } else if fetch {
            prot & PROT_EXEC != 0
        } else {
            prot & (PROT_READ | PROT_WRITE | PROT_EXEC) != 0
        };
        if !allowed {
            return Err(FaultError::Denied);
        }
        match paging::state(page) {
            // Present and allowed: a fault the region permits is a stale
            // entry (after mprotect gave access back); refresh it.
            PageState::Present | PageState::Parked => {
                paging::protect(page, prot);
                return Ok(());
            }
            PageState::Absent => {}
        }
        let source = region.page_source(page);
        let frame = heap::alloc_frame().ok_or(FaultError::OutOfMemory)?;
        if let Some(src) = source {
            if src.source == PACK_SOURCE {
                let bytes = self.pack.bytes();
                let start = src.file_offset as usize;
                if let Some(data) = bytes.get(start..start + src.len) {
                    // SAFETY: the frame was just allocated (4096 bytes at its
                    // alias address) and `page_offset + len` is within it.
                    unsafe {
                        core::ptr::copy_nonoverlapping(
                            data.as_ptr(),
                            (frame as *mut u8).add(src.page_offset),
                            src.len.min(PAGE_SIZE as usize - src.page_offset),
                        );
                    }
                }
            }
        }
        if paging::map(page, frame, prot).is_err() {
            // SAFETY: the frame is not mapped anywhere.
            unsafe { heap::free_frame(frame) };
            return Err(FaultError::OutOfMemory);
        }
        Ok(())
    }

    /// The frame behind `page`, faulted in for the access if needed.
    fn frame_for(&mut self, page: u64, write: bool) -> SysResult<u64> {
        if let Some(frame) = paging::frame_of(page) {
            if paging::state(page) == PageState::Present {
                return Ok(frame);
            }
        }
        match self.fault_in(page, write, false) {
            Ok(()) => paging::frame_of(page).ok_or(Errno::EFAULT),
            Err(FaultError::Unmapped | FaultError::Denied) => Err(Errno::EFAULT),
            Err(FaultError::OutOfMemory) => super::process::out_of_memory(),
        }
    }

    /// Runs `f` over the program's bytes `[addr, addr + len)`, a page's
    /// piece at a time, with each piece's alias pointer.
    fn each_piece(
        &mut self,
        addr: u64,
        len: usize,
        write: bool,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> SysResult<()> {
        if len == 0 {
            return Ok(());
        }
        self.space.check(addr, len as u64, write)?;
        let mut done = 0usize;
        while done < len {
            let at = addr + done as u64;
            let page = at & !(PAGE_SIZE - 1);
            let in_page = (at - page) as usize;
            let n = (PAGE_SIZE as usize - in_page).min(len - done);
            let frame = self.frame_for(page, write)?;
            // SAFETY: `frame` is the page's frame (4096 bytes at its alias
            // address) and `in_page + n <= 4096`.
            f(unsafe { (frame as *mut u8).add(in_page) }, done, n);
            done += n;
        }
        Ok(())
    }

    /// Copies `data` to the program's memory at `addr`.
    pub fn write_user(&mut self, addr: u64, data: &[u8]) -> SysResult<()> {
        self.each_piece(addr, data.len(), true, |dst, at, n| {
            // SAFETY: `dst` points at `n` bytes of the page's frame, which
            // does not overlap `data` (kernel memory).
            unsafe { core::ptr::copy_nonoverlapping(data.as_ptr().add(at), dst, n) };
        })
    }

    /// Copies the program's bytes at `addr` into `out`.
    pub fn read_user(&mut self, addr: u64, out: &mut [u8]) -> SysResult<()> {
        let len = out.len();
        let out_ptr = out.as_mut_ptr();
        self.each_piece(addr, len, false, |src, at, n| {
            // SAFETY: `src` points at `n` readable bytes of a frame; `out`
            // has room for `at + n` bytes.
            unsafe { core::ptr::copy_nonoverlapping(src, out_ptr.add(at), n) };
        })
    }

    /// The program's bytes at `addr`, `len` of them.
    pub fn read_vec(&mut self, addr: u64, len: usize) -> SysResult<Vec<u8>> {
        let mut out = Vec::new();
        out.try_reserve_exact(len).map_err(|_| Errno::ENOMEM)?;
        out.resize(len, 0);
        self.read_user(addr, &mut out)?;
        Ok(out)
    }

    /// A value of the program's: `N` bytes at `addr`.
    pub fn read_array<const N: usize>(&mut self, addr: u64) -> SysResult<[u8; N]> {
        let mut out = [0u8; N];
        self.read_user(addr, &mut out)?;
        Ok(out)
    }

    /// A u64 of the program's.
    pub fn read_u64(&mut self, addr: u64) -> SysResult<u64> {
        Ok(u64::from_le_bytes(self.read_array::<8>(addr)?))
    }

    /// A NUL-terminated string of the program's, at most `max` bytes
    /// (`ENAMETOOLONG` beyond).
    pub fn read_cstr(&mut self, addr: u64, max: usize) -> SysResult<Vec<u8>> {
        let mut out = Vec::new();
        let mut at = addr;
        loop {
            let page_end = (at & !(PAGE_SIZE - 1)) + PAGE_SIZE;
            let n = (page_end - at) as usize;
            let mut chunk = [0u8; PAGE_SIZE as usize];
            self.read_user(at, &mut chunk[..n])?;
            if let Some(nul) = chunk[..n].iter().position(|&b| b == 0) {
                out.extend_from_slice(&chunk[..nul]);
                if out.len() > max {
                    return Err(Errno::ENAMETOOLONG);
                }
                return Ok(out);
            }
            out.extend_from_slice(&chunk[..n]);
            if out.len() > max {
                return Err(Errno::ENAMETOOLONG);
            }
            at = page_end;
        }
    }

    /// Frees the frames of the pages in `range` (after munmap, brk).
    pub fn release(&mut self, range: core::ops::Range<u64>) {
        paging::for_each_mapped(range.start, range.end, paging::unmap);
    }

    /// Applies a new protection to the pages in `range` that have frames.
    pub fn reprotect(&mut self, range: core::ops::Range<u64>, prot: u32) {
        paging::for_each_mapped(range.start, range.end, |page| paging::protect(page, prot));
    }
}
