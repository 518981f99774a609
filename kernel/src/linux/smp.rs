//! Several CPUs: starting the others, the kernel lock, and keeping their
//! TLBs true to the page tables.
//!
//! The kernel runs on one CPU at a time: every entry from ring 3 (a
//! syscall, the timer, an exception) takes the kernel lock in
//! [`enter_kernel`] and every return to ring 3 gives it up in
//! [`leave_kernel`], so the kernel's state needs no other locking while
//! the program's threads run on every CPU at once. An idle CPU gives the
//! lock up while it halts. The lock belongs to the CPU, not to a thread:
//! a thread switched out while its CPU holds the lock is resumed, with the
//! lock, by whatever thread that CPU runs next.
//!
//! TLBs: a page unmapped or made less accessible may still be cached by
//! another CPU running the program. The kernel itself never reaches the
//! program's memory through its addresses (only through the alias of its
//! frames), so only CPUs in ring 3 matter: [`shoot_down`] interrupts each
//! of them ([`IPI_VECTOR`], whose handler flushes its TLB without the
//! lock) and waits until each has flushed or entered the kernel; a CPU in
//! the kernel flushes before it goes back to ring 3. Frames unmapped
//! meanwhile are freed only after that (see [`super::paging::settle`]).

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::apic::{self, Destination};
use crate::percpu::{self, MAX_CPUS};
use crate::{arch, exceptions, fwcfg};

/// The vector that asks a CPU to flush its TLB (and wakes it from `hlt`).
pub const IPI_VECTOR: u8 = 0xf0;

static LOCKED: AtomicBool = AtomicBool::new(false);

/// Takes the kernel lock: test-and-test-and-set, not a ticket lock, so
/// that a waiting CPU whose host thread is descheduled (more vCPUs than
/// free host cores, under TCG) does not hold up the CPUs queued behind it
/// (measured: a threaded stress program on 4 vCPUs over 2 host cores took
/// 5.9 s with a ticket lock, 0.14–0.20 s with this one).
pub fn lock() {
    while LOCKED
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        while LOCKED.load(Ordering::Relaxed) {
            arch::pause();
        }
    }
}

/// Gives the kernel lock up; only its holder calls this.
pub fn unlock() {
    LOCKED.store(false, Ordering::Release);
}

/// CPUs started so far, a bit per index.
static ONLINE: AtomicU32 = AtomicU32::new(1);
/// CPUs the VM has (QEMU's `-smp`), started or not.
static CONFIGURED: AtomicU32 = AtomicU32::new(1);

/// The TLB generation: raised by every shootdown.
#[no_mangle]
static MAYFLY_TLB_GENERATION: AtomicU64 = AtomicU64::new(0);
/// The generation each CPU's TLB has caught up with.
#[no_mangle]
static MAYFLY_TLB_SEEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Whether each CPU is (about to be) in ring 3, where its TLB is used.
static IN_USER: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

/// Number of CPUs the VM has.
pub fn configured() -> u32 {
    CONFIGURED.load(Ordering::Relaxed)
}

/// Whether a CPU other than the boot CPU has started.
pub fn several_online() -> bool {
    ONLINE.load(Ordering::Acquire) != 1
}

/// Entered from ring 3: this CPU's TLB no longer matters until it goes
/// back, so a shootdown need not wait for it; then the kernel lock.
pub fn enter_kernel() {
    IN_USER[percpu::index()].store(false, Ordering::SeqCst);
    lock();
}

/// Back to ring 3: unmapped frames are settled, the TLB is flushed if a
/// shootdown happened while this CPU was in the kernel, and the lock goes.
pub fn leave_kernel() {
    super::paging::settle();
    let cpu = percpu::index();
    let generation = MAYFLY_TLB_GENERATION.load(Ordering::SeqCst);
    if MAYFLY_TLB_SEEN[cpu].load(Ordering::Relaxed) < generation {
        super::paging::flush_all();
        MAYFLY_TLB_SEEN[cpu].store(generation, Ordering::Relaxed);
    }
    IN_USER[cpu].store(true, Ordering::SeqCst);
    unlock();
}

/// Makes every other CPU drop the translations the page tables no longer
/// give (this CPU has already flushed the pages it changed); returns once
/// none can use them. Called with the kernel lock.
pub fn shoot_down() {
    let me = percpu::index();
    let generation = MAYFLY_TLB_GENERATION.fetch_add(1, Ordering::SeqCst) + 1;
    MAYFLY_TLB_SEEN[me].store(generation, Ordering::SeqCst);
    let online = ONLINE.load(Ordering::Acquire);
    let others = (0..MAX_CPUS).filter(move |&c| c != me && online & (1 << c) != 0);
    for cpu in others.clone() {
        if IN_USER[cpu].load(Ordering::SeqCst) {
            apic::send(Destination::Cpu(cpu as u8), u32::from(IPI_VECTOR));
        }
    }
    for cpu in others {
        while IN_USER[cpu].load(Ordering::SeqCst)
            && MAYFLY_TLB_SEEN[cpu].load(Ordering::SeqCst) < generation
        {
            arch::pause();
        }
    }
}

/// Whether CPU `cpu` has started.
pub fn is_online(cpu: usize) -> bool {
    cpu < MAX_CPUS && ONLINE.load(Ordering::Acquire) & (1 << cpu) != 0
}

/// Wakes CPU `cpu` from `hlt` (it is idle, and there is work).
pub fn wake(cpu: usize) {
    if is_online(cpu) {
        apic::send(Destination::Cpu(cpu as u8), u32::from(IPI_VECTOR));
    }
}

/// Halts this idle CPU until an interrupt (the timer's tick, or a
/// [`wake`]), without the kernel lock meanwhile.
pub fn idle_wait() {
    unlock();
    // SAFETY: `sti; hlt` enables interrupts and halts; the interrupt
    // shadow of `sti` makes a wake-up sent after `unlock` end the `hlt`
    // rather than be taken before it. Interrupts from ring 0 only ever
    // reach the timer's and the IPI's short handlers, which return here.
    unsafe { core::arch::asm!("sti", "hlt", "cli", options(nomem, nostack)) };
    lock();
}

extern "C" {
    fn mayfly_ipi_interrupt();
    static mayfly_ap_trampoline: u8;
    static mayfly_ap_trampoline_end: u8;
}

// The flush IPI's handler: no lock, no Rust, nothing but RAX, RCX and RDX
// (saved), so it is the same from ring 3 and from an idle `hlt`. The CPU's
// index is its APIC ID (QEMU numbers them from 0).
global_asm!(
    r#"
    .section .text.ipi, "ax"
    .global mayfly_ipi_interrupt
mayfly_ipi_interrupt:
    push rax
    push rcx
    push rdx
    mov rcx, [rip + MAYFLY_TLB_GENERATION]
    mov rax, cr3
    mov cr3, rax
    movabs rax, {apic_id}
    mov eax, [rax]
    shr eax, 24
    and eax, {cpu_mask}
    lea rdx, [rip + MAYFLY_TLB_SEEN]
    mov [rdx + rax * 8], rcx
    movabs rax, {apic_eoi}
    mov dword ptr [rax], 0
    pop rdx
    pop rcx
    pop rax
    iretq
    "#,
    apic_id = const apic::register_address(apic::ID),
    apic_eoi = const apic::register_address(apic::EOI),
    cpu_mask = const MAX_CPUS - 1,
);
const _: () = assert!(MAX_CPUS.is_power_of_two());

/// Where the other CPUs start, in real mode: a page below 1 MiB (the SIPI
/// vector is its page number), in the low memory the kernel keeps and
/// never gives to the heap.
const TRAMPOLINE: u64 = 0x8000;
/// The trampoline's parameters, at the end of its page: page-table root,
/// the base of the stacks (CPU `i`'s top is `base + i * AP_STACK_BYTES`,
/// `i` from 1) and the entry point.
const PARAM_CR3: u64 = TRAMPOLINE + 0xfe8;
const PARAM_STACKS: u64 = TRAMPOLINE + 0xff0;
const PARAM_ENTRY: u64 = TRAMPOLINE + 0xff8;
/// Bytes of each other CPU's stack (its idle loop's, and its interrupts'
/// while idle).
const AP_STACK_BYTES: u64 = 64 * 1024;

// Real mode to long mode, position-dependent on TRAMPOLINE: the code is
// copied there, so addresses are `TRAMPOLINE + (label - start)`. The far
// jumps and the 16-bit `lgdt` are spelt as bytes. Long mode uses the program's page tables (the
// kernel's low 4 MiB are identity-mapped in them, this page too) and the
// trampoline's own GDT until `ap_main` loads the kernel's, whose 64-bit
// code (0x08) and data (0x10) selectors it shares, so CS and SS stay
// valid (its 32-bit code is at 0x18 only for the way up).
global_asm!(
    r#"
    .section .rodata.trampoline, "a"
    .global mayfly_ap_trampoline
    .global mayfly_ap_trampoline_end
    .code16
mayfly_ap_trampoline:
    cli
    cld
    mov ax, cs
    mov ds, ax
    .byte 0x66, 0x0f, 0x01, 0x16
    .word 2f - mayfly_ap_trampoline
    mov eax, cr0
    or eax, 1
    mov cr0, eax
    .byte 0x66, 0xea
    .long {base} + (3f - mayfly_ap_trampoline)
    .word 0x18
    .code32
3:
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov eax, cr4
    or eax, (1 << 5) | (1 << 9) | (1 << 10)
    mov cr4, eax
    mov eax, [{cr3}]
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, (1 << 0) | (1 << 8) | (1 << 11)
    wrmsr
    mov eax, cr0
    and eax, ~(1 << 2)
    or eax, (1 << 31) | (1 << 1) | 1
    mov cr0, eax
    .byte 0xea
    .long {base} + (4f - mayfly_ap_trampoline)
    .word 0x08
    .code64
4:
    "#,
    crate::boot::kernel_segments!(),
    r#"
    movabs rax, {apic_id}
    mov eax, [rax]
    shr eax, 24
    mov rdi, rax
    shl rax, {stack_shift}
    add rax, [{stacks}]
    mov rsp, rax
    xor ebp, ebp
    mov rax, [{entry}]
    call rax
5:
    hlt
    jmp 5b
    .balign 8
1:
    .quad 0
    .quad 0x00af9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00cf9a000000ffff
2:
    .word 31
    .long {base} + (1b - mayfly_ap_trampoline)
mayfly_ap_trampoline_end:
    .code64
    "#,
    base = const TRAMPOLINE,
    cr3 = const PARAM_CR3,
    stacks = const PARAM_STACKS,
    entry = const PARAM_ENTRY,
    apic_id = const apic::register_address(apic::ID),
    stack_shift = const AP_STACK_BYTES.trailing_zeros(),
);

/// Number of CPUs the VM has, from `fw_cfg` (at least 1, at most
/// [`MAX_CPUS`]).
fn cpus_from_firmware() -> u32 {
    fwcfg::cpu_count().map_or(1, |n| u32::from(n).clamp(1, MAX_CPUS as u32))
}

/// Starts the VM's other CPUs, if it has any: each comes up in the
/// trampoline, then in [`ap_main`], and waits for threads in the idle
/// loop. Returns at once (they start while the program does); the
/// interrupt handlers and the timer's rate must be set already.
pub fn start_others() {
    let cpus = cpus_from_firmware();
    CONFIGURED.store(cpus, Ordering::Relaxed);
    exceptions::set_interrupt_handler(IPI_VECTOR, mayfly_ipi_interrupt as *const () as u64);
    if cpus == 1 {
        return;
    }
    let layout =
        core::alloc::Layout::from_size_align((AP_STACK_BYTES * u64::from(cpus - 1)) as usize, 16)
            .expect("a small layout");
    // SAFETY: a non-zero size; the stacks are never freed (the CPUs run
    // until the VM ends).
    let stacks = unsafe { alloc::alloc::alloc(layout) };
    if stacks.is_null() {
        // Too little memory for a second CPU: the program runs on one.
        return;
    }
    // SAFETY: the trampoline's page lies in the low memory the kernel
    // keeps (below its image, never in the heap), identity-mapped and
    // writable; nothing else uses it. The code is copied whole, then the
    // parameters at the page's end, beyond the code (checked).
    unsafe {
        let start = core::ptr::addr_of!(mayfly_ap_trampoline);
        let len = core::ptr::addr_of!(mayfly_ap_trampoline_end) as usize - start as usize;
        assert!(TRAMPOLINE + len as u64 <= PARAM_CR3);
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
        let cr3: u64;
        core::arch::asm!("mov {}, cr3", out(reg) cr3, options(nomem, nostack, preserves_flags));
        core::ptr::write_volatile(PARAM_CR3 as *mut u64, cr3);
        core::ptr::write_volatile(PARAM_STACKS as *mut u64, stacks as u64);
        core::ptr::write_volatile(PARAM_ENTRY as *mut u64, ap_main as *const () as u64);
    }
    // INIT, then the start-up IPI twice, as the MP specification asks
    // (QEMU and KVM start a CPU on the first; the second is ignored).
    const INIT: u32 = 0b101 << 8 | 1 << 14;
    const STARTUP: u32 = 0b110 << 8 | 1 << 14 | (TRAMPOLINE >> 12) as u32;
    apic::send(Destination::AllButSelf, INIT);
    apic::send(Destination::AllButSelf, STARTUP);
    apic::send(Destination::AllButSelf, STARTUP);
}

/// A started CPU's first Rust code, on its own stack, with its APIC ID.
extern "C" fn ap_main(id: u64) -> ! {
    let cpu = id as usize;
    if cpu >= MAX_CPUS || cpu as u32 >= configured() {
        loop {
            // SAFETY: a CPU the kernel does not use halts for good, with
            // interrupts off.
            unsafe { core::arch::asm!("cli", "hlt", options(nomem, nostack)) };
        }
    }
    exceptions::init_cpu(cpu);
    super::entry::init();
    super::timer::start_this_cpu();
    lock();
    ONLINE.fetch_or(1 << cpu, Ordering::AcqRel);
    super::sched::idle_loop()
}
