//! A region of the address space and where its bytes come from.

use super::{page_aligned, PAGE_SIZE};

/// Where a region's bytes come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Zero-filled memory.
    Anonymous,
    /// Bytes of an immutable byte source (a file of the package, a segment
    /// of the program), copied on write.
    File {
        /// The kernel's id of the byte source.
        source: u32,
        /// The address where the source's byte `offset` lies. It is an
        /// address, not a distance from the region's start, so that both
        /// halves of a split region keep this backing unchanged; it may lie
        /// below the region's start (after a split) or above it (an ELF
        /// segment that starts inside its first page).
        start: u64,
        /// The source offset that lies at `start`.
        offset: u64,
        /// How many source bytes are available from `start`; the region
        /// reads zero beyond them.
        size: u64,
    },
}

impl Backing {
    /// The source and offset of the byte at `addr`, ignoring the region's
    /// bounds; bytes below `start` come from the source too (as far back as
    /// offset 0), because Linux maps whole file pages.
    fn byte(&self, addr: u64) -> Option<(u32, u64)> {
        let Backing::File {
            source,
            start,
            offset,
            size,
        } = *self
        else {
            return None;
        };
        let off = if addr >= start {
            let d = addr - start;
            if d >= size {
                return None;
            }
            offset.checked_add(d)?
        } else {
            offset.checked_sub(start - addr)?
        };
        Some((source, off))
    }

    /// The addresses whose bytes come from the source: `[lo, hi)`.
    fn span(&self) -> Option<(u64, u64)> {
        let Backing::File {
            start,
            offset,
            size,
            ..
        } = *self
        else {
            return None;
        };
        Some((start.saturating_sub(offset), start.saturating_add(size)))
    }
}

/// What a region is for; kept so that the kernel can name regions (as
/// `/proc/self/maps` would) and so that pieces of different kinds never
/// merge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// A segment of the program.
    Image,
    /// The program break's heap.
    Heap,
    /// The initial stack.
    Stack,
    /// Made by `mmap`.
    Mmap,
}

/// A page-aligned range of addresses with one protection and one backing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// The first address (page-aligned).
    pub start: u64,
    /// The exclusive end (page-aligned).
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u32,
    /// Where the bytes come from.
    pub backing: Backing,
    /// What the region is for.
    pub kind: RegionKind,
}

/// Where one page's non-zero bytes come from: copy `len` bytes of `source`
/// from `file_offset` to `page_offset` within the page; the rest of the
/// page is zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSource {
    /// The kernel's id of the byte source.
    pub source: u32,
    /// The source offset of the first byte copied.
    pub file_offset: u64,
    /// Where in the page the copied bytes start.
    pub page_offset: usize,
    /// How many bytes are copied (1..=4096).
    pub len: usize,
}

impl Region {
    /// Where the byte at `addr` comes from: `Some((source, file offset))`,
    /// or `None` when it reads zero (anonymous memory, past the source's
    /// bytes, or an address outside this region).
    pub fn file_byte(&self, addr: u64) -> Option<(u32, u64)> {
        if addr < self.start || addr >= self.end {
            return None;
        }
        self.backing.byte(addr)
    }

    /// Where the page at `page` gets its bytes from, or `None` when it is
    /// all zero. `None` too when `page` is not the page-aligned address of
    /// a page of this region, so that a caller's mistake reads as zero
    /// instead of as another page's bytes.
    pub fn page_source(&self, page: u64) -> Option<PageSource> {
        if !page_aligned(page) || page < self.start || page >= self.end {
            return None;
        }
        let page_end = page.checked_add(PAGE_SIZE)?;
        let (lo, hi) = self.backing.span()?;
        let from = page.max(lo);
        let to = page_end.min(hi);
        if from >= to {
            return None;
        }
        let (source, file_offset) = self.backing.byte(from)?;
        Some(PageSource {
            source,
            file_offset,
            page_offset: usize::try_from(from - page).ok()?,
            len: usize::try_from(to - from).ok()?,
        })
    }

    /// Whether `self` and `next` can be one region: adjacent and alike.
    pub(super) fn joins(&self, next: &Region) -> bool {
        self.end == next.start
            && self.prot == next.prot
            && self.kind == next.kind
            && self.backing == next.backing
    }
}
