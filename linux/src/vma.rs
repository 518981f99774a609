//! The regions of a Linux process's address space, as `mmap`, `munmap`,
//! `mprotect` and `brk` change them. No page table is touched here: every
//! operation says which page ranges it released or changed, and the kernel
//! applies exactly those to its page tables.
//!
//! The regions are kept sorted, non-overlapping, page-aligned and inside
//! [`USER_START`]..[`USER_END`]. Adjacent regions with the same protection,
//! kind and backing are merged, which is safe because a [`Backing`] names
//! where each *address* comes from (not each offset from the region's
//! start): two pieces of one split region keep the very same backing.
//!
//! ```
//! use mayfly_linux::vma::*;
//! let mut space = AddressSpace::new();
//! let (addr, replaced) = space
//!     .mmap(0, 10_000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, Backing::Anonymous)
//!     .unwrap();
//! assert!(replaced.is_empty());
//! assert_eq!(addr % PAGE_SIZE, 0);
//! assert!(space.check(addr, 3 * PAGE_SIZE, true).is_ok());
//! assert_eq!(space.munmap(addr, PAGE_SIZE).unwrap(), vec![addr..addr + PAGE_SIZE]);
//! assert!(space.check(addr, 1, false).is_err());
//! ```

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ops::Range;

use crate::errno::{Errno, SysResult};

mod region;
pub use region::{Backing, PageSource, Region, RegionKind};

/// The size of a page, the granularity of every mapping.
pub const PAGE_SIZE: u64 = 4096;
/// The lowest address a program may use: the kernel keeps the first 4 MiB.
pub const USER_START: u64 = 0x40_0000;
/// The exclusive top of user space (the last page below the canonical hole
/// is left out, as Linux does, so that no instruction runs into it).
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
/// The exclusive top of the initial stack.
pub const STACK_TOP: u64 = USER_END;
/// The size of the initial stack (Linux's default `RLIMIT_STACK`); it does
/// not grow.
pub const STACK_SIZE: u64 = 8 << 20;
/// `mmap` without a usable hint allocates top-down below this address,
/// leaving the space between it and the stack unused as a guard.
pub const MMAP_TOP: u64 = 0x0000_7f00_0000_0000;
/// Where a static-pie is loaded (Linux's `ELF_ET_DYN_BASE` without
/// randomization).
pub const PIE_BASE: u64 = 0x0000_5555_5555_4000;

/// Pages may be read.
pub const PROT_READ: u32 = 1;
/// Pages may be written.
pub const PROT_WRITE: u32 = 2;
/// Pages may be executed.
pub const PROT_EXEC: u32 = 4;
/// Every protection bit this module knows; others are refused by
/// `mprotect` and ignored by `mmap`, as Linux does.
const PROT_ALL: u32 = PROT_READ | PROT_WRITE | PROT_EXEC;

/// Writes are shared with other mappings of the same object.
pub const MAP_SHARED: u32 = 1;
/// Writes are private to this mapping (copy on write).
pub const MAP_PRIVATE: u32 = 2;
/// Place the mapping exactly at `addr`, replacing what is there.
pub const MAP_FIXED: u32 = 0x10;
/// The mapping is not backed by a file.
pub const MAP_ANONYMOUS: u32 = 0x20;
/// A stack that grows down; accepted, but the region does not grow.
pub const MAP_GROWSDOWN: u32 = 0x100;
/// No swap is reserved; accepted and meaningless here.
pub const MAP_NORESERVE: u32 = 0x4000;
/// Prefault the pages; accepted, the kernel may ignore it.
pub const MAP_POPULATE: u32 = 0x8000;
/// A thread stack; accepted and meaningless here.
pub const MAP_STACK: u32 = 0x20000;
/// Place the mapping exactly at `addr`, failing with `EEXIST` if anything
/// is there.
pub const MAP_FIXED_NOREPLACE: u32 = 0x10_0000;
/// The bits of `flags` that say shared or private.
const MAP_TYPE: u32 = 0x0f;

/// Rounds `x` up to a page boundary; `None` on overflow.
pub fn page_up(x: u64) -> Option<u64> {
    Some(x.checked_add(PAGE_SIZE - 1)? & !(PAGE_SIZE - 1))
}

/// Whether `x` is on a page boundary.
pub const fn page_aligned(x: u64) -> bool {
    x & (PAGE_SIZE - 1) == 0
}

/// Rounds `x` down to a page boundary.
pub const fn page_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

/// Whether `[start, end)` is a non-empty range inside user space.
fn in_user_space(start: u64, end: u64) -> bool {
    USER_START <= start && start < end && end <= USER_END
}

/// The regions of one process's address space, and its program break.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressSpace {
    /// Keyed by each region's start.
    regions: BTreeMap<u64, Region>,
    /// The lowest break: the page-aligned end of the program's image.
    brk_start: u64,
    /// The current break, byte-granular as Linux keeps it; the heap covers
    /// `[brk_start, page_up(brk))`.
    brk: u64,
    /// Where top-down allocation starts.
    mmap_top: u64,
}

impl Default for AddressSpace {
    fn default() -> Self {
        Self::new()
    }
}

impl AddressSpace {
    /// An empty address space with no break set.
    pub fn new() -> AddressSpace {
        AddressSpace {
            regions: BTreeMap::new(),
            brk_start: 0,
            brk: 0,
            mmap_top: MMAP_TOP,
        }
    }

    /// Adds one ELF segment `[segment_start, segment_end)`, rounded outwards
    /// to pages. A segment that shares a page with one inserted before wins
    /// that page (the earlier region is split), as Linux's loader maps the
    /// segments in order with `MAP_FIXED`. The kernel therefore inserts
    /// every segment first and only then fills pages from [`Self::regions`].
    ///
    /// `EINVAL` for an empty segment, `ENOMEM` for one outside user space.
    pub fn insert_image(
        &mut self,
        segment_start: u64,
        segment_end: u64,
        prot: u32,
        backing: Backing,
    ) -> SysResult<()> {
        if segment_end <= segment_start {
            return Err(Errno::EINVAL);
        }
        let start = page_down(segment_start);
        let end = page_up(segment_end).ok_or(Errno::ENOMEM)?;
        if !in_user_space(start, end) {
            return Err(Errno::ENOMEM);
        }
        self.carve(start, end);
        self.place(start, end, prot & PROT_ALL, backing, RegionKind::Image);
        Ok(())
    }

    /// Sets the initial break, the page-aligned end of the program's image
    /// ([`crate::elf::LoadPlan::end`]); called once, before any `brk`.
    pub fn set_brk_start(&mut self, addr: u64) {
        let start = page_up(addr).unwrap_or(USER_END);
        self.brk_start = start;
        self.brk = start;
    }

    /// The lowest break, as [`Self::set_brk_start`] set it.
    pub fn brk_start(&self) -> u64 {
        self.brk_start
    }

    /// The current break.
    pub fn current_brk(&self) -> u64 {
        self.brk
    }

    /// Linux's `brk`: moves the break to `requested` and returns the break
    /// after the call, which is the old one when the move is refused (below
    /// the initial break, outside user space, or growing into another
    /// region). The heap grows by read-write anonymous pages; shrinking
    /// releases the pages above the new break, whatever is mapped there
    /// (as Linux unmaps that range), and returns them for the kernel to
    /// unmap.
    pub fn brk(&mut self, requested: u64) -> (u64, Vec<Range<u64>>) {
        let old = self.brk;
        if requested < self.brk_start {
            return (old, Vec::new());
        }
        let (Some(old_end), Some(new_end)) = (page_up(old), page_up(requested)) else {
            return (old, Vec::new());
        };
        if new_end > USER_END {
            return (old, Vec::new());
        }
        if new_end < old_end {
            let released = self.carve(new_end, old_end);
            self.brk = requested;
            return (requested, released);
        }
        if new_end > old_end {
            if !in_user_space(old_end, new_end) || self.overlaps(old_end, new_end) {
                return (old, Vec::new());
            }
            self.place(
                old_end,
                new_end,
                PROT_READ | PROT_WRITE,
                Backing::Anonymous,
                RegionKind::Heap,
            );
        }
        self.brk = requested;
        (requested, Vec::new())
    }

    /// Linux's `mmap`: returns the mapping's address and the page ranges it
    /// replaced (only `MAP_FIXED` replaces; the kernel unmaps those first).
    ///
    /// - exactly one of `MAP_SHARED` and `MAP_PRIVATE`, else `EINVAL`
    ///   (`MAP_SHARED_VALIDATE` is refused too). There is one process, so a
    ///   shared anonymous mapping behaves as a private one; a shared file
    ///   mapping is a private copy as well (the sources are immutable):
    ///   refusing a writable one is the kernel's choice;
    /// - `len` 0 is `EINVAL`; it is rounded up to pages (`ENOMEM` on
    ///   overflow);
    /// - a `File` backing's `offset` must be page-aligned (`EINVAL`) and its
    ///   last page must not overflow (`EOVERFLOW`); its `start` is ignored
    ///   and set to the mapping's address, which the caller cannot know;
    /// - `MAP_FIXED`/`MAP_FIXED_NOREPLACE`: `addr` page-aligned (`EINVAL`),
    ///   the range inside user space (`ENOMEM`); `MAP_FIXED_NOREPLACE`
    ///   fails with `EEXIST` on any overlap;
    /// - otherwise `addr` is a hint, used (rounded down to a page) when the
    ///   whole range is free and inside user space; else the highest free
    ///   range below [`MMAP_TOP`] and above the heap (`ENOMEM` if none).
    ///
    /// `MAP_ANONYMOUS` is not consulted: `backing` says where bytes come
    /// from. `MAP_GROWSDOWN`, `MAP_STACK`, `MAP_NORESERVE`, `MAP_POPULATE`
    /// and unknown flags are accepted and ignored, as are unknown `prot`
    /// bits.
    pub fn mmap(
        &mut self,
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        backing: Backing,
    ) -> SysResult<(u64, Vec<Range<u64>>)> {
        let kind = flags & MAP_TYPE;
        if kind != MAP_SHARED && kind != MAP_PRIVATE {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        if let Backing::File { offset, .. } = backing {
            if !page_aligned(offset) {
                return Err(Errno::EINVAL);
            }
            if offset.checked_add(len).is_none() {
                return Err(Errno::EOVERFLOW);
            }
        }
        let fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0;
        let (start, replaced) = if fixed {
            if !page_aligned(addr) {
                return Err(Errno::EINVAL);
            }
            let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
            if !in_user_space(addr, end) {
                return Err(Errno::ENOMEM);
            }
            if flags & MAP_FIXED_NOREPLACE != 0 && self.overlaps(addr, end) {
                return Err(Errno::EEXIST);
            }
            (addr, self.carve(addr, end))
        } else {
            (self.unmapped_area(addr, len)?, Vec::new())
        };
        let backing = match backing {
            Backing::File {
                source,
                offset,
                size,
                ..
            } => Backing::File {
                source,
                start,
                offset,
                size,
            },
            Backing::Anonymous => Backing::Anonymous,
        };
        // The range was checked above: `start + len` cannot overflow.
        let end = start.saturating_add(len);
        self.place(start, end, prot & PROT_ALL, backing, RegionKind::Mmap);
        Ok((start, replaced))
    }

    /// Linux's `munmap`: removes every page of `[addr, addr + len)` (of any
    /// kind, the stack and the image included) and returns the page ranges
    /// that were mapped, for the kernel to unmap; unmapping nothing is not
    /// an error. `EINVAL` for an unaligned `addr`, `len` 0, or a range
    /// that leaves user space's top.
    pub fn munmap(&mut self, addr: u64, len: u64) -> SysResult<Vec<Range<u64>>> {
        if !page_aligned(addr) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if end > USER_END {
            return Err(Errno::EINVAL);
        }
        Ok(self.carve(addr, end))
    }

    /// Linux's `mprotect`: sets `prot` on every page of `[addr, addr +
    /// len)` and returns the ranges whose protection changed, with the new
    /// protection. `EINVAL` for an unaligned `addr` or an unknown `prot`
    /// bit; `ENOMEM` if any page of the range is unmapped, in which case
    /// nothing changes (Linux may have changed the pages before the hole;
    /// doing none is the stricter reading). `len` 0 changes nothing.
    pub fn mprotect(
        &mut self,
        addr: u64,
        len: u64,
        prot: u32,
    ) -> SysResult<Vec<(Range<u64>, u32)>> {
        if !page_aligned(addr) || prot & !PROT_ALL != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        if !self.covered(addr, end) {
            return Err(Errno::ENOMEM);
        }
        let keys = self.keys_overlapping(addr, end);
        let mut changed: Vec<Range<u64>> = Vec::new();
        for key in keys {
            let Some(region) = self.regions.get(&key) else {
                continue;
            };
            if region.prot == prot {
                continue;
            }
            let Some(region) = self.regions.remove(&key) else {
                continue;
            };
            let from = region.start.max(addr);
            let to = region.end.min(end);
            self.split_insert(&region, from, to, |r| r.prot = prot);
            push_range(&mut changed, from..to);
        }
        self.merge_around(addr, end);
        Ok(changed.into_iter().map(|r| (r, prot)).collect())
    }

    /// The region holding `addr`, if any.
    pub fn find(&self, addr: u64) -> Option<&Region> {
        let (_, region) = self.regions.range(..=addr).next_back()?;
        (addr < region.end).then_some(region)
    }

    /// Whether the program may let the kernel read (or, with `write`, also
    /// write) `[addr, addr + len)`: `EFAULT` unless every byte lies in a
    /// region with `PROT_READ` (and `PROT_WRITE`). `len` 0 is always fine,
    /// as Linux's `access_ok` of nothing is.
    pub fn check(&self, addr: u64, len: u64, write: bool) -> SysResult<()> {
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(Errno::EFAULT)?;
        let need = if write {
            PROT_READ | PROT_WRITE
        } else {
            PROT_READ
        };
        let mut at = addr;
        while at < end {
            let region = self.find(at).ok_or(Errno::EFAULT)?;
            if region.prot & need != need {
                return Err(Errno::EFAULT);
            }
            at = region.end;
        }
        Ok(())
    }

    /// Every region, in address order.
    pub fn regions(&self) -> impl Iterator<Item = &Region> + '_ {
        self.regions.values()
    }

    /// Adds the initial stack, `[STACK_TOP - STACK_SIZE, STACK_TOP)`,
    /// read-write and anonymous; `EEXIST` if anything is mapped there.
    pub fn insert_stack(&mut self) -> SysResult<()> {
        let start = STACK_TOP - STACK_SIZE;
        if self.overlaps(start, STACK_TOP) {
            return Err(Errno::EEXIST);
        }
        self.place(
            start,
            STACK_TOP,
            PROT_READ | PROT_WRITE,
            Backing::Anonymous,
            RegionKind::Stack,
        );
        Ok(())
    }

    /// The start of the highest free range of `len` bytes for a mapping
    /// without `MAP_FIXED`: the hint's page if that range is free, else
    /// top-down below `mmap_top` and above the heap.
    fn unmapped_area(&self, hint: u64, len: u64) -> SysResult<u64> {
        let hint = page_down(hint);
        if hint != 0 {
            if let Some(end) = hint.checked_add(len) {
                if in_user_space(hint, end) && !self.overlaps(hint, end) {
                    return Ok(hint);
                }
            }
        }
        let heap_end = page_up(self.brk).unwrap_or(USER_END);
        let floor = USER_START.max(self.brk_start).max(heap_end);
        let mut hi = self.mmap_top.min(USER_END);
        let fits = |lo: u64, hi: u64| hi >= lo && hi - lo >= len;
        for region in self.regions.range(..hi).rev().map(|(_, r)| r) {
            if region.end <= hi && fits(region.end.max(floor), hi) {
                return Ok(hi - len);
            }
            hi = hi.min(region.start);
            if hi <= floor {
                break;
            }
        }
        if fits(floor, hi) {
            return Ok(hi - len);
        }
        Err(Errno::ENOMEM)
    }

    /// Whether any page of `[start, end)` is mapped.
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.regions
            .range(..end)
            .next_back()
            .is_some_and(|(_, r)| r.end > start)
    }

    /// Whether every page of `[start, end)` is mapped.
    fn covered(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        while at < end {
            match self.find(at) {
                Some(region) => at = region.end,
                None => return false,
            }
        }
        true
    }

    /// The keys of the regions that overlap `[start, end)`, ascending.
    fn keys_overlapping(&self, start: u64, end: u64) -> Vec<u64> {
        let mut keys: Vec<u64> = self
            .regions
            .range(..end)
            .rev()
            .take_while(|(_, r)| r.end > start)
            .map(|(k, _)| *k)
            .collect();
        keys.reverse();
        keys
    }

    /// Removes every page of `[start, end)`, splitting the regions that
    /// stick out, and returns the page ranges that were mapped.
    fn carve(&mut self, start: u64, end: u64) -> Vec<Range<u64>> {
        let mut removed = Vec::new();
        for key in self.keys_overlapping(start, end) {
            let Some(region) = self.regions.remove(&key) else {
                continue;
            };
            let from = region.start.max(start);
            let to = region.end.min(end);
            if region.start < from {
                self.insert_piece(&region, region.start, from);
            }
            if to < region.end {
                self.insert_piece(&region, to, region.end);
            }
            push_range(&mut removed, from..to);
        }
        removed
    }

    /// Puts `region` back split at `from` and `to`, with `change` applied
    /// to the middle piece.
    fn split_insert(
        &mut self,
        region: &Region,
        from: u64,
        to: u64,
        change: impl FnOnce(&mut Region),
    ) {
        if region.start < from {
            self.insert_piece(region, region.start, from);
        }
        let mut middle = Region {
            start: from,
            end: to,
            ..region.clone()
        };
        change(&mut middle);
        self.regions.insert(from, middle);
        if to < region.end {
            self.insert_piece(region, to, region.end);
        }
    }

    /// Inserts the piece `[start, end)` of `region`: the backing is
    /// address-based, so it is kept as it is.
    fn insert_piece(&mut self, region: &Region, start: u64, end: u64) {
        self.regions.insert(
            start,
            Region {
                start,
                end,
                ..region.clone()
            },
        );
    }

    /// Inserts a region into a free range and merges it with its
    /// neighbours.
    fn place(&mut self, start: u64, end: u64, prot: u32, backing: Backing, kind: RegionKind) {
        self.regions.insert(
            start,
            Region {
                start,
                end,
                prot,
                backing,
                kind,
            },
        );
        self.merge_around(start, end);
    }

    /// Merges alike adjacent regions from the one before `start` to the one
    /// starting at `end`.
    fn merge_around(&mut self, start: u64, end: u64) {
        let first = self
            .regions
            .range(..start)
            .next_back()
            .map_or(start, |(k, _)| *k);
        let keys: Vec<u64> = self.regions.range(first..=end).map(|(k, _)| *k).collect();
        let mut keys = keys.into_iter();
        let Some(mut current) = keys.next() else {
            return;
        };
        for key in keys {
            let joins = match (self.regions.get(&current), self.regions.get(&key)) {
                (Some(a), Some(b)) => a.joins(b),
                _ => false,
            };
            if !joins {
                current = key;
                continue;
            }
            if let Some(next) = self.regions.remove(&key) {
                if let Some(region) = self.regions.get_mut(&current) {
                    region.end = next.end;
                }
            }
        }
    }
}

/// Appends `range` to `ranges`, joining it to the last one when they touch,
/// so that the kernel gets as few ranges as possible.
fn push_range(ranges: &mut Vec<Range<u64>>, range: Range<u64>) {
    if let Some(last) = ranges.last_mut() {
        if last.end == range.start {
            last.end = range.end;
            return;
        }
    }
    ranges.push(range);
}

#[cfg(test)]
mod tests;
