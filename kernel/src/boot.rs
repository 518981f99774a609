//! PVH entry: from 32-bit protected mode with paging off to Rust in long
//! mode, with SSE on, on our own stack, with `.bss` zeroed by us.
//!
//! QEMU finds the entry point through the `XEN_ELFNOTE_PHYS32_ENTRY` note
//! and jumps there with `ebx` pointing at an `hvm_start_info`. The boot code
//! identity-maps the first 16 GiB with 2 MiB pages (Lambda's 10 GiB maximum
//! plus the MMIO hole below 4 GiB), and maps them again at [`PHYS_OFFSET`],
//! then calls [`kernel_main`], which unmaps the guard page below the stack,
//! hands RAM to the heap and starts what the image asked for (a native
//! function or the Linux personality).

use core::arch::global_asm;
use core::ptr::{addr_of, addr_of_mut};

use mayfly_proto::{exit, limits};

use crate::{arch, heap};

/// Number of 2 MiB page directories the boot code fills: 16 GiB.
pub const MAPPED_GIB: usize = 16;
/// Where the boot code maps all physical memory a second time, in the
/// upper half (PML4 slot 256): the heap, DMA buffers, MMIO and the initrd
/// are reached there, so that the lower half can be given to a Linux
/// program, which may ask for any address from 4 MiB up.
pub const PHYS_OFFSET: u64 = 0xffff_8000_0000_0000;
// Lambda's largest memory size must be mapped even if all of it lies above
// 4 GiB (RAM that does not fit below the MMIO hole is placed there).
const _: () = assert!(limits::MAX_MEMORY_MB as usize <= (MAPPED_GIB - 4) * 1024);

/// The assembly that a CPU just in long mode runs first: the kernel's
/// data selector in DS, ES and SS, null FS and GS (their bases are set
/// through MSRs), the FPU initialised. Shared by the boot CPU's entry and
/// the other CPUs' trampoline.
macro_rules! kernel_segments {
    () => {
        "mov ax, 0x10\nmov ds, ax\nmov es, ax\nmov ss, ax\nxor eax, eax\nmov fs, ax\nmov gs, ax\nfninit"
    };
}
pub(crate) use kernel_segments;

global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4
    .long 8
    .long 18
    .asciz "Xen"
    .balign 4
    .quad pvh_start32
    .balign 4

    .section .bss.pagetables, "aw", @nobits
    .balign 4096
    .global BOOT_PML4
BOOT_PML4:
    .skip 4096
BOOT_PDPT:
    .skip 4096
    .global BOOT_PD
BOOT_PD:
    .skip 4096 * {gib}

    .section .rodata.gdt, "a"
    .balign 16
BOOT_GDT:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
BOOT_GDT_PTR:
    .word 23
    .long BOOT_GDT

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov esi, ebx

    mov edi, offset __bss_start
    mov ecx, offset __bss_end
    sub ecx, edi
    shr ecx, 2
    xor eax, eax
    rep stosd

    mov eax, offset BOOT_PDPT
    or eax, 3
    mov dword ptr [BOOT_PML4], eax
    mov dword ptr [BOOT_PML4 + 256 * 8], eax

    xor ecx, ecx
2:
    mov eax, ecx
    shl eax, 12
    add eax, offset BOOT_PD
    or eax, 3
    mov dword ptr [BOOT_PDPT + ecx * 8], eax
    inc ecx
    cmp ecx, {gib}
    jne 2b

    xor ecx, ecx
3:
    mov eax, ecx
    shl eax, 21
    or eax, 0x83
    mov dword ptr [BOOT_PD + ecx * 8], eax
    mov eax, ecx
    shr eax, 11
    mov dword ptr [BOOT_PD + ecx * 8 + 4], eax
    inc ecx
    cmp ecx, {gib} * 512
    jne 3b

    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10)
    mov cr4, eax
    mov eax, offset BOOT_PML4
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 1 << 8
    wrmsr
    mov eax, cr0
    and eax, ~(1 << 2)
    or eax, (1 << 31) | (1 << 1) | 1
    mov cr0, eax

    lgdt [BOOT_GDT_PTR]
    mov eax, offset pvh_long_mode
    push 0x08
    push eax
    retf

    .code64
pvh_long_mode:
    "#,
    kernel_segments!(),
    r#"
    lea rsp, [rip + __stack_top]
    mov edi, esi
    call {main}
5:
    hlt
    jmp 5b
    "#,
    gib = const MAPPED_GIB,
    main = sym kernel_main,
);

/// `hvm_start_info` magic.
const START_INFO_MAGIC: u32 = 0x336e_c578;

#[repr(C)]
struct StartInfo {
    magic: u32,
    version: u32,
    flags: u32,
    nr_modules: u32,
    modlist_paddr: u64,
    cmdline_paddr: u64,
    rsdp_paddr: u64,
    memmap_paddr: u64,
    memmap_entries: u32,
    reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct MemmapEntry {
    addr: u64,
    size: u64,
    kind: u32,
    reserved: u32,
}

/// E820 type of usable RAM.
const MEMMAP_RAM: u32 = 1;
/// The longest kernel command line kept; longer ones are cut (and then
/// fail to decode, with a message).
const CMDLINE_MAX: usize = 32 * 1024;
/// The most memory-map entries kept.
const MEMMAP_MAX: usize = 32;

/// `hvm_modlist_entry`: a module (the initrd) the loader placed in RAM.
#[repr(C)]
#[derive(Clone, Copy)]
struct ModlistEntry {
    paddr: u64,
    size: u64,
    cmdline_paddr: u64,
    reserved: u64,
}

/// What the loader told us, copied out of loader memory before the heap
/// may reuse it.
pub struct BootInfo {
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    ram: [(u64, u64); MEMMAP_MAX],
    ram_len: usize,
    initrd: Option<(u64, u64)>,
}

impl BootInfo {
    /// The initrd QEMU loaded (`-initrd`), as `(start, end)` physical
    /// addresses: a Linux function's package.
    pub fn initrd(&self) -> Option<(u64, u64)> {
        self.initrd
    }

    /// The kernel command line (empty if the loader gave none or it was not
    /// UTF-8).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// Usable RAM regions as `(start, end)` physical addresses.
    pub fn ram(&self) -> &[(u64, u64)] {
        &self.ram[..self.ram_len]
    }
}

static mut BOOT_INFO: BootInfo = BootInfo {
    cmdline: [0; CMDLINE_MAX],
    cmdline_len: 0,
    ram: [(0, 0); MEMMAP_MAX],
    ram_len: 0,
    initrd: None,
};

/// Copies the start info into kernel memory.
///
/// # Safety
/// `info` must be the pointer the PVH loader passed, and this must run once,
/// before anything else reads `BOOT_INFO`.
unsafe fn read_start_info(info: *const StartInfo) -> &'static BootInfo {
    // SAFETY: single-threaded early boot; nothing else holds a reference.
    let boot = unsafe { &mut *core::ptr::addr_of_mut!(BOOT_INFO) };
    // SAFETY: the loader's pointer is valid and identity-mapped.
    let info = unsafe { &*info };
    if info.magic != START_INFO_MAGIC {
        crate::console::kernel_line(format_args!(
            "not booted through PVH (bad start info magic)"
        ));
        arch::power_off(exit::FATAL);
    }
    if info.cmdline_paddr != 0 {
        let mut p = info.cmdline_paddr as *const u8;
        // SAFETY: the command line is a NUL-terminated string in loader
        // memory; we never read past CMDLINE_MAX bytes.
        unsafe {
            while boot.cmdline_len < CMDLINE_MAX && *p != 0 {
                boot.cmdline[boot.cmdline_len] = *p;
                boot.cmdline_len += 1;
                p = p.add(1);
            }
        }
    }
    if info.nr_modules > 0 && info.modlist_paddr != 0 {
        // SAFETY: the loader promises `nr_modules` entries there; only the
        // first (the initrd) is read.
        let module = unsafe { *(info.modlist_paddr as *const ModlistEntry) };
        if module.size > 0 {
            boot.initrd = Some((module.paddr, module.paddr + module.size));
        }
    }
    if info.version >= 1 && info.memmap_paddr != 0 {
        let entries = info.memmap_paddr as *const MemmapEntry;
        for i in 0..info.memmap_entries as usize {
            // SAFETY: the loader promises `memmap_entries` entries there.
            let entry = unsafe { *entries.add(i) };
            if entry.kind == MEMMAP_RAM && boot.ram_len < MEMMAP_MAX {
                boot.ram[boot.ram_len] = (entry.addr, entry.addr + entry.size);
                boot.ram_len += 1;
            }
        }
    }
    boot
}

/// First Rust code: runs on the boot stack with interrupts off.
extern "C" fn kernel_main(start_info: u32) -> ! {
    crate::clock::start_calibration();
    crate::exceptions::init();
    // SAFETY: the pointer comes straight from the PVH loader, and this is
    // the one call.
    let boot = unsafe { read_start_info(start_info as usize as *const StartInfo) };
    protect_stack();
    heap::init_heap(boot.ram(), boot.initrd());
    extern "Rust" {
        /// Defined by the image: [`entry!`](crate::entry) for a native
        /// function, [`linux_entry!`](crate::linux_entry) for the Linux
        /// personality.
        fn __mayfly_start(boot: &'static BootInfo) -> !;
    }
    // SAFETY: both macros define the symbol with exactly this signature.
    unsafe { __mayfly_start(boot) }
}

extern "C" {
    static __stack_guard: u8;
    static mut BOOT_PD: [u64; 512];
}

#[repr(C, align(4096))]
struct PageTable([u64; 512]);

static mut GUARD_TABLE: PageTable = PageTable([0; 512]);

/// Unmaps the 4 KiB page below the stack, so that a stack overflow faults
/// (and ends the VM) instead of silently overwriting statics.
fn protect_stack() {
    let guard = addr_of!(__stack_guard) as usize;
    let big_page = guard & !((2 << 20) - 1);
    // SAFETY: early boot, single CPU: nothing else touches the page tables.
    // The 2 MiB page that holds the guard is replaced by an equivalent 4 KiB
    // table that leaves the guard page out; CR3 is reloaded to flush it.
    unsafe {
        let table = &mut *addr_of_mut!(GUARD_TABLE);
        for (i, entry) in table.0.iter_mut().enumerate() {
            let addr = (big_page + i * 4096) as u64;
            *entry = if addr as usize == guard {
                0
            } else {
                addr | 0x3
            };
        }
        let pd = &mut *addr_of_mut!(BOOT_PD);
        pd[big_page >> 21] = (table.0.as_ptr() as u64) | 0x3;
        core::arch::asm!("mov {tmp}, cr3", "mov cr3, {tmp}", tmp = out(reg) _, options(nostack));
        arch::invlpg(guard);
    }
}
