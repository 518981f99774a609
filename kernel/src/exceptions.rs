//! CPU exceptions: a fault in the function (a stack overflow into the guard
//! page, a bad pointer, a division by zero) is reported on the console and
//! ends the VM with exit code [`exit::EXCEPTION`],
//! which the host reports as `Runtime.ExitError`, instead of a silent
//! triple fault.
//!
//! Every exception runs on its own stack (IST 1), so a stack overflow can
//! still be reported. An exception in the kernel never returns; one raised
//! by a Linux program in ring 3 goes to [`crate::linux::user_exception`],
//! which may resolve it (a page touched for the first time) and resume the
//! program, with its registers and FPU state as they were.

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};
use core::ptr::{addr_of, addr_of_mut};

use mayfly_proto::exit;

use crate::percpu::{self, MAX_CPUS};
use crate::{arch, console};

/// Bytes of the exception stack.
const STACK_BYTES: usize = 16 * 1024;
/// Vectors handled: the 32 architectural exceptions.
const VECTORS: usize = 32;
/// Entries in the IDT: every vector, so that interrupts (the timer's, the
/// APIC's spurious one) have room.
const IDT_ENTRIES: usize = 256;
/// Code segment selector (the boot GDT's, kept in the new one).
const CODE_SELECTOR: u16 = 0x08;
/// The first CPU's TSS selector in the GDT; CPU `i`'s is 16 bytes further
/// per CPU (a TSS descriptor takes two entries).
const FIRST_TSS_SELECTOR: u16 = 0x28;
/// Entries of the GDT: five segments, then a TSS descriptor per CPU.
const GDT_ENTRIES: usize = 5 + 2 * MAX_CPUS;
/// Kernel data selector (also SYSCALL's stack selector).
pub const KERNEL_DATA_SELECTOR: u16 = 0x10;
/// User data selector, with RPL 3.
pub const USER_DATA_SELECTOR: u16 = 0x18 | 3;
/// User 64-bit code selector, with RPL 3.
pub const USER_CODE_SELECTOR: u16 = 0x20 | 3;

#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp: [u64; 3],
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

#[repr(C, packed)]
struct TablePointer {
    limit: u16,
    base: u64,
}

#[repr(C, align(16))]
struct ExceptionStack([u8; STACK_BYTES]);

/// Each CPU's TSS: its stack for interrupts from ring 3 and its exception
/// stack.
static mut TSS: [Tss; MAX_CPUS] = [const {
    Tss {
        reserved0: 0,
        rsp: [0; 3],
        reserved1: 0,
        ist: [0; 7],
        reserved2: 0,
        reserved3: 0,
        iomap_base: core::mem::size_of::<Tss>() as u16,
    }
}; MAX_CPUS];
static mut EXCEPTION_STACK: [ExceptionStack; MAX_CPUS] =
    [const { ExceptionStack([0; STACK_BYTES]) }; MAX_CPUS];
/// Null, kernel 64-bit code, kernel data, user data, user 64-bit code (in
/// the order SYSRET requires: user data at STAR's selector plus 8, user
/// code plus 16), then each CPU's TSS descriptor (two entries each),
/// written by [`init_cpu`].
static mut GDT: [u64; GDT_ENTRIES] = {
    let mut gdt = [0; GDT_ENTRIES];
    gdt[1] = 0x00af_9a00_0000_ffff;
    gdt[2] = 0x00cf_9200_0000_ffff;
    gdt[3] = 0x00cf_f200_0000_ffff;
    gdt[4] = 0x00af_fa00_0000_ffff;
    gdt
};
/// Where an exception saves the interrupted FPU and SSE state (a Linux
/// program's, which the kernel's own SSE code would otherwise clobber):
/// one per CPU, found through GS.
#[repr(C, align(16))]
struct FxArea([u8; 512]);
static mut EXCEPTION_FX: [FxArea; MAX_CPUS] = [const { FxArea([0; 512]) }; MAX_CPUS];
static mut IDT: [IdtEntry; IDT_ENTRIES] = [IdtEntry {
    offset_low: 0,
    selector: 0,
    ist: 0,
    attributes: 0,
    offset_mid: 0,
    offset_high: 0,
    reserved: 0,
}; IDT_ENTRIES];

/// The assembly that pushes the 15 general registers in [`Frame`]'s order
/// (rax first, so r15 lies lowest): shared by the exception stubs and the
/// interrupt stubs of the Linux personality.
macro_rules! save_general_registers {
    () => {
        "push rax\npush rbx\npush rcx\npush rdx\npush rsi\npush rdi\npush rbp\npush r8\npush r9\npush r10\npush r11\npush r12\npush r13\npush r14\npush r15"
    };
}
pub(crate) use save_general_registers;

/// The assembly that pops what [`save_general_registers`] pushed.
macro_rules! restore_general_registers {
    () => {
        "pop r15\npop r14\npop r13\npop r12\npop r11\npop r10\npop r9\npop r8\npop rbp\npop rdi\npop rsi\npop rdx\npop rcx\npop rbx\npop rax"
    };
}
pub(crate) use restore_general_registers;

// One stub per vector: those without a CPU-pushed error code push 0, so
// the frame is the same for all; then the vector; then the common path,
// which aligns the stack and calls Rust with a pointer to the frame.
global_asm!(
    r#"
    .section .text.exceptions, "ax"
    .macro EXC_NOERR n
    .global mayfly_exception_\n
    mayfly_exception_\n:
        push 0
        push \n
        jmp mayfly_exception_common
    .endm
    .macro EXC_ERR n
    .global mayfly_exception_\n
    mayfly_exception_\n:
        push \n
        jmp mayfly_exception_common
    .endm
    EXC_NOERR 0
    EXC_NOERR 1
    EXC_NOERR 2
    EXC_NOERR 3
    EXC_NOERR 4
    EXC_NOERR 5
    EXC_NOERR 6
    EXC_NOERR 7
    EXC_ERR 8
    EXC_NOERR 9
    EXC_ERR 10
    EXC_ERR 11
    EXC_ERR 12
    EXC_ERR 13
    EXC_ERR 14
    EXC_NOERR 15
    EXC_NOERR 16
    EXC_ERR 17
    EXC_NOERR 18
    EXC_NOERR 19
    EXC_NOERR 20
    EXC_ERR 21
    EXC_NOERR 22
    EXC_NOERR 23
    EXC_NOERR 24
    EXC_NOERR 25
    EXC_NOERR 26
    EXC_NOERR 27
    EXC_NOERR 28
    EXC_ERR 29
    EXC_ERR 30
    EXC_NOERR 31
    mayfly_exception_common:
        test qword ptr [rsp + 24], 3
        jz 1f
        swapgs
    1:
    "#,
    save_general_registers!(),
    r#"
        mov rax, gs:[{fx}]
        fxsave [rax]
        mov rdi, rsp
        mov rbp, rsp
        and rsp, -16
        call {handler}
        mov rsp, rbp
        mov rax, gs:[{fx}]
        fxrstor [rax]
    "#,
    restore_general_registers!(),
    r#"
        add rsp, 16
        test qword ptr [rsp + 8], 3
        jz 2f
        swapgs
    2:
        iretq

    .section .rodata.exceptions, "a"
    .balign 8
    mayfly_exception_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
        .quad mayfly_exception_\n
    .endr
    "#,
    handler = sym exception,
    fx = const percpu::EXCEPTION_FX,
);

extern "C" {
    static mayfly_exception_table: [u64; VECTORS];
}

/// What the stubs leave on the exception stack: the general registers,
/// then the vector, the error code and the CPU's interrupt frame.
#[repr(C)]
pub struct Frame {
    /// General registers, as pushed by the stub.
    pub r15: u64,
    #[allow(missing_docs)]
    pub r14: u64,
    #[allow(missing_docs)]
    pub r13: u64,
    #[allow(missing_docs)]
    pub r12: u64,
    #[allow(missing_docs)]
    pub r11: u64,
    #[allow(missing_docs)]
    pub r10: u64,
    #[allow(missing_docs)]
    pub r9: u64,
    #[allow(missing_docs)]
    pub r8: u64,
    #[allow(missing_docs)]
    pub rbp: u64,
    #[allow(missing_docs)]
    pub rdi: u64,
    #[allow(missing_docs)]
    pub rsi: u64,
    #[allow(missing_docs)]
    pub rdx: u64,
    #[allow(missing_docs)]
    pub rcx: u64,
    #[allow(missing_docs)]
    pub rbx: u64,
    #[allow(missing_docs)]
    pub rax: u64,
    /// The exception's vector.
    pub vector: u64,
    /// The CPU's error code, or 0 for vectors without one.
    pub error_code: u64,
    /// Where the exception happened.
    pub rip: u64,
    /// The interrupted code segment (RPL 3 for a Linux program).
    pub cs: u64,
    #[allow(missing_docs)]
    pub rflags: u64,
    #[allow(missing_docs)]
    pub rsp: u64,
    #[allow(missing_docs)]
    pub ss: u64,
}

/// The FPU state the running exception interrupted (a Linux program's),
/// as the stub saved it.
pub fn interrupted_fpu() -> [u8; 512] {
    // SAFETY: the stub wrote this CPU's area before calling the handler,
    // and nothing else writes it while the handler runs (interrupts are
    // off, and other CPUs have their own).
    unsafe { (*addr_of!(EXCEPTION_FX))[percpu::index()].0 }
}

/// The address a page fault was for.
pub fn fault_address() -> u64 {
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    cr2
}

const NAMES: [&str; 20] = [
    "divide error",
    "debug",
    "non-maskable interrupt",
    "breakpoint",
    "overflow",
    "bound range exceeded",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack-segment fault",
    "general protection fault",
    "page fault",
    "reserved",
    "x87 floating-point error",
    "alignment check",
    "machine check",
    "SIMD floating-point error",
];

/// A `fmt::Write` into a fixed buffer: no heap in an exception.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = room.min(s.len());
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

extern "C" fn exception(frame: *mut Frame) {
    // SAFETY: the stub passes the frame it built on the exception stack,
    // which nothing else uses while the handler runs.
    let frame = unsafe { &mut *frame };
    if frame.cs & 3 == 3 {
        // A Linux program's: resolved and resumed, or the program ends.
        crate::linux::smp::enter_kernel();
        crate::linux::user_exception(frame);
        crate::linux::smp::leave_kernel();
        return;
    }
    kernel_exception(frame)
}

/// The name of an exception vector.
pub fn vector_name(vector: u64) -> &'static str {
    NAMES.get(vector as usize).copied().unwrap_or("exception")
}

fn kernel_exception(frame: &Frame) -> ! {
    let cr2 = fault_address();
    let name = NAMES
        .get(frame.vector as usize)
        .copied()
        .unwrap_or("exception");
    let mut line = Line {
        buf: [0; 256],
        len: 0,
    };
    let _ = write!(
        line,
        "CPU exception: {name} (vector {}, error code {:#x}) at rip {:#x}, rsp {:#x}",
        frame.vector, frame.error_code, frame.rip, frame.rsp
    );
    if frame.vector == 14 {
        let hint = if (cr2 as usize).abs_diff(guard_page()) < 4096 {
            " (stack overflow)"
        } else {
            ""
        };
        let _ = write!(line, ", address {cr2:#x}{hint}");
    }
    // What the function logged first, if the console is not itself the
    // code that faulted.
    console::flush();
    let message = core::str::from_utf8(&line.buf[..line.len]).unwrap_or("CPU exception");
    console::kernel_line(format_args!("{message}"));
    arch::power_off(exit::EXCEPTION)
}

fn guard_page() -> usize {
    extern "C" {
        static __stack_guard: u8;
    }
    addr_of!(__stack_guard) as usize
}

/// Where an interrupt from ring 3 switches the stack to on this CPU (the
/// running thread's kernel stack).
pub fn set_kernel_stack(top: u64) {
    // SAFETY: this CPU's TSS, with interrupts off: the CPU reads `rsp[0]`
    // only on an interrupt from ring 3, which cannot come while this runs,
    // and no other CPU touches this TSS.
    unsafe { (*addr_of_mut!(TSS))[percpu::index()].rsp[0] = top };
}

/// Points `vector` at `handler`, an interrupt gate on the current stack
/// (IST 0), so an interrupt from ring 3 runs on the thread's kernel stack.
pub fn set_interrupt_handler(vector: u8, handler: u64) {
    // SAFETY: set by the boot CPU before any other CPU starts, with
    // interrupts off; the entry is written whole before any interrupt can
    // use it.
    unsafe { (*addr_of_mut!(IDT))[vector as usize] = gate(handler, 0) };
}

/// A present 64-bit interrupt gate (interrupts off in the handler) to
/// `handler` in the kernel's code segment, on stack `ist` (0: the current
/// one, or TSS.rsp0 from ring 3).
fn gate(handler: u64, ist: u8) -> IdtEntry {
    IdtEntry {
        offset_low: handler as u16,
        selector: CODE_SELECTOR,
        ist,
        attributes: 0x8e,
        offset_mid: (handler >> 16) as u16,
        offset_high: (handler >> 32) as u32,
        reserved: 0,
    }
}

/// Builds the IDT (every exception on IST 1) and sets up the boot CPU.
pub fn init() {
    // SAFETY: early boot on the boot CPU with interrupts off, before any
    // other CPU runs: nothing else uses the IDT.
    unsafe {
        let idt = &mut *addr_of_mut!(IDT);
        let table = &*addr_of!(mayfly_exception_table);
        for (entry, &handler) in idt.iter_mut().zip(table.iter()) {
            *entry = gate(handler, 1);
        }
    }
    init_cpu(0);
}

/// Sets up CPU `index` (each CPU calls it once, first thing): its per-CPU
/// area, the GDT with its own TSS (its own exception stack), and the IDT.
pub fn init_cpu(index: usize) {
    // SAFETY: the address of this CPU's own save area, a static.
    let fx = unsafe { addr_of!((*addr_of!(EXCEPTION_FX))[index]) } as u64;
    percpu::init(index, fx);
    // SAFETY: interrupts are off; this CPU writes only its own TSS and its
    // own two GDT entries, which no other CPU reads. The GDT keeps the boot
    // GDT's code and data descriptors at the same selectors, so the loaded
    // segments stay valid.
    unsafe {
        let stack_top = addr_of!((*addr_of!(EXCEPTION_STACK))[index]) as u64 + STACK_BYTES as u64;
        let tss = &mut (*addr_of_mut!(TSS))[index];
        tss.ist[0] = stack_top;
        let base = tss as *mut Tss as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let gdt = &mut *addr_of_mut!(GDT);
        let slot = 5 + 2 * index;
        gdt[slot] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        gdt[slot + 1] = base >> 32;
        let gdt_pointer = TablePointer {
            limit: (core::mem::size_of::<[u64; GDT_ENTRIES]>() - 1) as u16,
            base: gdt.as_ptr() as u64,
        };
        asm!("lgdt [{}]", in(reg) &gdt_pointer, options(readonly, nostack, preserves_flags));
        let selector = FIRST_TSS_SELECTOR + 16 * index as u16;
        asm!("ltr {0:x}", in(reg) selector, options(nomem, nostack, preserves_flags));
        let idt_pointer = TablePointer {
            limit: (core::mem::size_of::<[IdtEntry; IDT_ENTRIES]>() - 1) as u16,
            base: addr_of!(IDT) as u64,
        };
        asm!("lidt [{}]", in(reg) &idt_pointer, options(readonly, nostack, preserves_flags));
    }
}
