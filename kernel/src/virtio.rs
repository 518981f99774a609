//! virtio-mmio discovery on QEMU's `microvm`, and the DMA glue
//! (`virtio_drivers::Hal`) for a kernel whose RAM is reached through an alias.

use alloc::alloc::{alloc_zeroed, dealloc};
use core::alloc::Layout;
use core::ptr::NonNull;

use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

use crate::heap;

/// Where `microvm` places its virtio-mmio transports, and their stride.
const MMIO_BASE: usize = 0xfeb0_0000;
const MMIO_STRIDE: usize = 0x200;
/// Slots scanned; QEMU 7.2 has 24 on microvm, later versions may differ,
/// and unassigned slots read as zero.
const MMIO_SLOTS: usize = 32;
const VIRTIO_MAGIC: u32 = 0x7472_6976;

/// DMA for virtio-drivers: the heap lives in the upper-half alias of
/// physical memory and the kernel image is identity-mapped, so a buffer's
/// physical address is a subtraction away (see [`heap::virt_to_phys`]),
/// and the device may read any RAM, so sharing needs nothing else.
pub struct KernelHal;

// SAFETY: every kernel address is either an alias address or an
// identity-mapped one, so `virt_to_phys` gives the physical address the
// device uses and `phys_to_virt` a valid pointer; allocations are
// page-aligned, zeroed and exclusively owned until `dma_dealloc`.
unsafe impl Hal for KernelHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("DMA layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::alloc::handle_alloc_error(layout));
        (heap::virt_to_phys(ptr.as_ptr() as u64) as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout = Layout::from_size_align(pages * PAGE_SIZE, PAGE_SIZE).expect("DMA layout");
        // SAFETY: allocated by `dma_alloc` with the same layout.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(heap::phys_to_virt(paddr) as *mut u8).expect("MMIO address is not null")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        heap::virt_to_phys(buffer.as_ptr() as *mut u8 as u64) as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// The devices the kernel drives, as found by [`scan`].
#[derive(Default)]
pub struct Devices {
    /// The network card.
    pub net: Option<MmioTransport<'static>>,
    /// The console.
    pub console: Option<MmioTransport<'static>>,
}

/// Probes every `microvm` virtio-mmio slot and keeps the first network card
/// and the first console.
pub fn scan() -> Devices {
    let mut found = Devices::default();
    for slot in 0..MMIO_SLOTS {
        let addr = heap::phys_to_virt((MMIO_BASE + slot * MMIO_STRIDE) as u64) as usize;
        // SAFETY: the slot is in microvm's virtio-mmio window, alias
        // mapped; reading the magic register has no side effects.
        let magic = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if magic != VIRTIO_MAGIC {
            continue;
        }
        let header = NonNull::new(addr as *mut VirtIOHeader).expect("slot address is not null");
        // SAFETY: a virtio-mmio header lives at this address (magic checked),
        // it is used by this transport alone, and it stays mapped forever.
        let Ok(transport) = (unsafe { MmioTransport::new(header, MMIO_STRIDE) }) else {
            continue;
        };
        match transport.device_type() {
            DeviceType::Network if found.net.is_none() => found.net = Some(transport),
            DeviceType::Console if found.console.is_none() => found.console = Some(transport),
            _ => {}
        }
    }
    found
}
