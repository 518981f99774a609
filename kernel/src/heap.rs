//! Memory: the kernel's heap and, for a Linux program, page frames, both
//! carved from all the RAM the VM was given, so the configured memory size
//! really bounds the function.
//!
//! RAM is reached through the upper-half alias ([`boot::PHYS_OFFSET`]).
//! The largest RAM region is an arena: the heap grows up from its bottom
//! (talc claims another piece when an allocation would fail), page frames
//! are taken from its top down, and freed frames are kept on a list for
//! reuse. A native image never asks for a frame, so its heap may take the
//! whole arena. Allocation is counted so the guest can report its peak,
//! and a small reserve is held back so that an out-of-memory error can
//! still be reported over the network.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::addr_of;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use mayfly_proto::exit;
use talc::{OomHandler, Span, Talc, Talck};

use crate::{arch, boot};

/// Held back from the heap until an allocation has failed: enough to
/// format and post the error.
const OOM_RESERVE: u64 = 256 * 1024;
/// The boot code maps this much; RAM beyond it is not used.
const MAPPED_LIMIT: u64 = (boot::MAPPED_GIB as u64) << 30;
/// The heap grows by at least this much at a time.
const HEAP_STEP: u64 = 1 << 20;
/// Bytes of a page frame.
pub const FRAME_BYTES: u64 = 4096;

extern "C" {
    static __kernel_end: u8;
}

/// The arena's bounds, as alias addresses: the heap has claimed everything
/// below `ARENA_LOW`, frames everything from `ARENA_HIGH` up.
static ARENA_LOW: AtomicU64 = AtomicU64::new(0);
static ARENA_HIGH: AtomicU64 = AtomicU64::new(0);
/// Freed frames, a list threaded through the frames themselves (each holds
/// the address of the next; 0 ends it).
static FREE_FRAMES: AtomicU64 = AtomicU64::new(0);
static FRAMES_IN_USE: AtomicU64 = AtomicU64::new(0);
static FRAMES_PEAK: AtomicU64 = AtomicU64::new(0);

/// The heap's span in the arena so far (talc's view of it), so that each
/// growth extends it instead of starting another arena; `(0, 0)` before
/// the first.
static HEAP_SPAN: crate::global::Global<(u64, u64)> = crate::global::Global::new((0, 0));

/// Grows the heap from the bottom of the arena when talc runs out.
pub struct GrowFromArena;

impl OomHandler for GrowFromArena {
    fn handle_oom(talc: &mut Talc<Self>, layout: Layout) -> Result<(), ()> {
        let need = layout.size() as u64 + layout.align() as u64 + 256;
        let low = ARENA_LOW.load(Ordering::Relaxed);
        let high = ARENA_HIGH.load(Ordering::Relaxed);
        let room = high.saturating_sub(low);
        if room < need {
            return Err(());
        }
        let take = need.max(HEAP_STEP).next_multiple_of(FRAME_BYTES).min(room);
        ARENA_LOW.store(low + take, Ordering::Relaxed);
        HEAP_SPAN
            .with(|span| {
                let grown = if span.1 == low && span.0 != 0 {
                    let old = Span::new(span.0 as *mut u8, span.1 as *mut u8);
                    let wanted = Span::new(span.0 as *mut u8, (low + take) as *mut u8);
                    // SAFETY: `old` is the span talc holds; the bytes added
                    // are arena RAM just below the high mark, never handed
                    // out (the low mark only grows).
                    unsafe { talc.extend(old, wanted) }
                } else {
                    let new = Span::new(low as *mut u8, (low + take) as *mut u8);
                    // SAFETY: as above: arena RAM never handed out.
                    unsafe { talc.claim(new) }?
                };
                let (start, end) = grown.get_base_acme().ok_or(())?;
                *span = (start as u64, end as u64);
                Ok(())
            })
            .unwrap_or(Err(()))
    }
}

/// The global allocator: talc over the arena, with usage counters.
pub struct KernelAllocator {
    talc: Talck<talc::locking::AssumeUnlockable, GrowFromArena>,
    in_use: AtomicUsize,
    peak: AtomicUsize,
    failed: AtomicBool,
    reserve: AtomicU64,
}

#[global_allocator]
static ALLOCATOR: KernelAllocator = KernelAllocator {
    talc: Talck::new(Talc::new(GrowFromArena)),
    in_use: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
    failed: AtomicBool::new(false),
    reserve: AtomicU64::new(0),
};

impl KernelAllocator {
    fn count_alloc(&self, size: usize) {
        let now = self.in_use.fetch_add(size, Ordering::Relaxed) + size;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: delegates to talc, which upholds the GlobalAlloc contract; the
// counters only observe. The guest runs the kernel on one CPU with
// interrupts off, so AssumeUnlockable's single-threaded assumption holds.
unsafe impl GlobalAlloc for KernelAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract (a
        // non-zero size), which is the same as talc's.
        let ptr = unsafe { self.talc.alloc(layout) };
        if ptr.is_null() {
            self.failed.store(true, Ordering::Relaxed);
        } else {
            self.count_alloc(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`: the caller's contract is talc's.
        let ptr = unsafe { self.talc.alloc_zeroed(layout) };
        if ptr.is_null() {
            self.failed.store(true, Ordering::Relaxed);
        } else {
            self.count_alloc(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller guarantees `ptr` came from this allocator
        // (that is, from talc) with `layout`.
        unsafe { self.talc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `ptr` came from talc with `layout`
        // and that `new_size` is non-zero and does not overflow.
        let new = unsafe { self.talc.realloc(ptr, layout, new_size) };
        if new.is_null() {
            self.failed.store(true, Ordering::Relaxed);
        } else {
            self.in_use.fetch_sub(layout.size(), Ordering::Relaxed);
            self.count_alloc(new_size);
        }
        new
    }
}

/// The alias address of physical address `phys`.
pub fn phys_to_virt(phys: u64) -> u64 {
    phys + boot::PHYS_OFFSET
}

/// The physical address of a kernel address: an alias address, or one in
/// the kernel image (statics, the boot stack), which is identity-mapped.
pub fn virt_to_phys(virt: u64) -> u64 {
    if virt >= boot::PHYS_OFFSET {
        virt - boot::PHYS_OFFSET
    } else {
        virt
    }
}

/// Sets up the arena over the largest usable RAM region above the kernel
/// image (leaving out the initrd), hands other regions to the heap, and
/// keeps [`OOM_RESERVE`] bytes aside. The heap takes from the arena as it
/// needs, [`HEAP_STEP`] at a time.
pub fn init_heap(ram: &[(u64, u64)], initrd: Option<(u64, u64)>) {
    let kernel_end = addr_of!(__kernel_end) as u64;
    let mut regions = [(0u64, 0u64); 40];
    let mut count = 0;
    let mut add = |start: u64, end: u64| {
        if end > start + FRAME_BYTES && count < regions.len() {
            regions[count] = (
                start.next_multiple_of(FRAME_BYTES),
                end & !(FRAME_BYTES - 1),
            );
            count += 1;
        }
    };
    for &(start, end) in ram {
        let start = start.max(kernel_end);
        let end = end.min(MAPPED_LIMIT);
        match initrd {
            Some((i_start, i_end)) if i_start < end && i_end > start => {
                add(start, i_start);
                add(i_end, end);
            }
            _ => add(start, end),
        }
    }
    let regions = &mut regions[..count];
    let Some(largest) = regions
        .iter()
        .copied()
        .enumerate()
        .max_by_key(|(_, (s, e))| e - s)
    else {
        crate::console::kernel_line(format_args!("no usable RAM above the kernel image"));
        arch::power_off(exit::FATAL);
    };
    let (index, (start, mut end)) = largest;
    if end - start > 2 * OOM_RESERVE {
        end -= OOM_RESERVE;
        ALLOCATOR
            .reserve
            .store(phys_to_virt(end), Ordering::Relaxed);
    }
    ARENA_LOW.store(phys_to_virt(start), Ordering::Relaxed);
    ARENA_HIGH.store(phys_to_virt(end), Ordering::Relaxed);
    let mut talc = ALLOCATOR.talc.lock();
    for (i, &(start, end)) in regions.iter().enumerate() {
        if i == index {
            continue;
        }
        let span = Span::new(phys_to_virt(start) as *mut u8, phys_to_virt(end) as *mut u8);
        // SAFETY: the region is RAM the loader reported usable, above the
        // kernel image, outside the initrd and below the mapped limit, and
        // used by nothing else.
        let _ = unsafe { talc.claim(span) };
    }
}

/// Whether an allocation has failed since boot.
pub fn allocation_failed() -> bool {
    ALLOCATOR.failed.load(Ordering::Relaxed)
}

/// Gives the reserve to the heap, once, so that an out-of-memory error can
/// be reported.
pub fn release_reserve() {
    let start = ALLOCATOR.reserve.swap(0, Ordering::Relaxed);
    if start != 0 {
        let span = Span::new(start as *mut u8, (start + OOM_RESERVE) as *mut u8);
        // SAFETY: the reserve was carved from RAM in `init_heap` and never
        // claimed before.
        let _ = unsafe { ALLOCATOR.talc.lock().claim(span) };
    }
}

/// The most memory in use so far: everything below the end of the kernel
/// image (firmware area, image, stack) plus the heap's and the frames'
/// peaks, in bytes.
pub fn max_used_bytes() -> u64 {
    let image = addr_of!(__kernel_end) as u64;
    image
        + ALLOCATOR.peak.load(Ordering::Relaxed) as u64
        + FRAMES_PEAK.load(Ordering::Relaxed) * FRAME_BYTES
}

/// Takes one zeroed page frame; its alias address, or `None` when RAM is
/// exhausted.
pub fn alloc_frame() -> Option<u64> {
    let free = FREE_FRAMES.load(Ordering::Relaxed);
    let frame = if free != 0 {
        // SAFETY: a frame on the free list is RAM owned by the list; its
        // first word holds the next frame's address.
        let next = unsafe { core::ptr::read(free as *const u64) };
        FREE_FRAMES.store(next, Ordering::Relaxed);
        free
    } else {
        let high = ARENA_HIGH.load(Ordering::Relaxed);
        if high < ARENA_LOW.load(Ordering::Relaxed) + FRAME_BYTES {
            return None;
        }
        ARENA_HIGH.store(high - FRAME_BYTES, Ordering::Relaxed);
        high - FRAME_BYTES
    };
    // SAFETY: the frame is RAM just taken from the arena or the free list,
    // owned by nobody else, and mapped through the alias.
    unsafe { core::ptr::write_bytes(frame as *mut u8, 0, FRAME_BYTES as usize) };
    let now = FRAMES_IN_USE.fetch_add(1, Ordering::Relaxed) + 1;
    FRAMES_PEAK.fetch_max(now, Ordering::Relaxed);
    Some(frame)
}

/// Returns a frame taken by [`alloc_frame`].
///
/// # Safety
/// `frame` must come from [`alloc_frame`], and nothing may use it after
/// (no mapping may still point at it).
pub unsafe fn free_frame(frame: u64) {
    // SAFETY: the caller gives the frame back; its first word now threads
    // the free list.
    unsafe { core::ptr::write(frame as *mut u64, FREE_FRAMES.load(Ordering::Relaxed)) };
    FREE_FRAMES.store(frame, Ordering::Relaxed);
    FRAMES_IN_USE.fetch_sub(1, Ordering::Relaxed);
}
