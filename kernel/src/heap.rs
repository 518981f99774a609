//! The heap: it spans all the RAM the VM was given, so the configured
//! memory size really bounds the function; allocation is counted so the
//! guest can report its peak, and a small reserve is held back so that an
//! out-of-memory error can still be reported over the network.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::addr_of;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use mayfly_proto::exit;
use talc::{ErrOnOom, Span, Talc, Talck};

use crate::{arch, boot};

/// Held back from the heap until an allocation has failed: enough to
/// format and post the error.
const OOM_RESERVE: usize = 256 * 1024;
/// The boot code maps this much; RAM beyond it is not used.
const MAPPED_LIMIT: u64 = (boot::MAPPED_GIB as u64) << 30;

extern "C" {
    static __kernel_end: u8;
}

/// The global allocator: talc over all RAM, with usage counters.
pub struct KernelAllocator {
    talc: Talck<talc::locking::AssumeUnlockable, ErrOnOom>,
    in_use: AtomicUsize,
    peak: AtomicUsize,
    failed: AtomicBool,
    reserve: AtomicUsize,
}

#[global_allocator]
static ALLOCATOR: KernelAllocator = KernelAllocator {
    talc: Talck::new(Talc::new(ErrOnOom)),
    in_use: AtomicUsize::new(0),
    peak: AtomicUsize::new(0),
    failed: AtomicBool::new(false),
    reserve: AtomicUsize::new(0),
};

impl KernelAllocator {
    fn count_alloc(&self, size: usize) {
        let now = self.in_use.fetch_add(size, Ordering::Relaxed) + size;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

// SAFETY: delegates to talc, which upholds the GlobalAlloc contract; the
// counters only observe. The guest has one CPU and no interrupts, so
// AssumeUnlockable's single-threaded assumption holds.
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

/// Hands every usable RAM region above the kernel image to the heap,
/// keeping [`OOM_RESERVE`] bytes of the largest one aside.
pub fn init_heap(ram: &[(u64, u64)]) {
    let kernel_end = addr_of!(__kernel_end) as u64;
    let mut regions = [(0u64, 0u64); 32];
    let mut count = 0;
    for &(start, end) in ram {
        let start = start.max(kernel_end);
        let end = end.min(MAPPED_LIMIT);
        if end > start + 4096 && count < regions.len() {
            regions[count] = (start, end);
            count += 1;
        }
    }
    let regions = &mut regions[..count];
    let Some(largest) = regions.iter_mut().max_by_key(|(s, e)| e - s) else {
        crate::console::kernel_line(format_args!("no usable RAM above the kernel image"));
        arch::power_off(exit::FATAL);
    };
    if largest.1 - largest.0 > 2 * OOM_RESERVE as u64 {
        largest.1 -= OOM_RESERVE as u64;
        ALLOCATOR
            .reserve
            .store(largest.1 as usize, Ordering::Relaxed);
    }
    let mut talc = ALLOCATOR.talc.lock();
    for &(start, end) in regions.iter() {
        // SAFETY: the region is RAM the loader reported usable, above the
        // kernel image and below the mapped limit, and used by nothing else.
        let _ = unsafe { talc.claim(Span::new(start as *mut u8, end as *mut u8)) };
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
/// image (firmware area, image, stack) plus the heap's peak, in bytes.
pub fn max_used_bytes() -> u64 {
    let image = addr_of!(__kernel_end) as u64;
    image + ALLOCATOR.peak.load(Ordering::Relaxed) as u64
}
