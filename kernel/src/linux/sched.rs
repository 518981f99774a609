//! Threads and their scheduler, on the VM's one CPU.
//!
//! Every thread has its own kernel stack and its own saved FPU state. The
//! kernel runs with interrupts off, so a thread leaves the CPU only at two
//! points: a syscall that must wait (it answers [`Errno::ERESTARTNOINTR`]
//! to the dispatcher, which yields here and runs it again: a waiting
//! syscall holds nothing while others run), and the timer interrupt, which
//! preempts a thread running in ring 3, so a thread spinning without
//! syscalls cannot starve the others or the network.

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::ptr::addr_of;

use super::entry::{self, SyscallFrame};

/// Bytes of a thread's kernel stack (the first thread uses the boot
/// stack).
const KSTACK_BYTES: usize = 128 * 1024;
/// The most threads a program may have at once.
pub const MAX_THREADS: usize = 256;

/// A thread's saved FPU and SSE state (FXSAVE).
#[repr(C, align(16))]
pub struct FxArea(pub [u8; 512]);

/// One thread.
pub struct Thread {
    /// Its id (the first thread's is the pid, 1).
    pub tid: u32,
    /// Its kernel stack (none for the first thread: the boot stack).
    kstack: Option<(*mut u8, Layout)>,
    kstack_top: u64,
    /// The kernel stack pointer while it is switched out.
    ksp: u64,
    /// Its ring-3 FPU state, saved at every entry into the kernel.
    fx: Box<FxArea>,
    /// Its thread pointer (FS base).
    fs_base: u64,
    /// `set_tid_address` / CLONE_CHILD_CLEARTID: zeroed and woken at exit.
    pub clear_child_tid: u64,
    /// It called exit: it never runs again once it leaves the CPU.
    pub exiting: bool,
    /// The futex address it waits on, while it does.
    pub futex: Option<u64>,
    /// A FUTEX_WAKE chose it.
    pub woken: bool,
    /// When its waiting syscall gives up (monotonic ns), set by the first
    /// attempt and kept while it is restarted.
    pub deadline: Option<u64>,
    /// Its blocked signals.
    pub sigmask: u64,
    /// Its alternate signal stack: (base, size, flags).
    pub altstack: (u64, u64, u32),
    /// Where rt_sigreturn resumes it: registers and FPU state.
    pub resume: Option<Box<(super::signal::Context, [u8; 512])>>,
}

impl Drop for Thread {
    fn drop(&mut self) {
        if let Some((base, layout)) = self.kstack.take() {
            // SAFETY: allocated by `spawn` with this layout; the thread is
            // dropped only once it can never run again (exited, and not
            // the running thread), so nothing uses its stack.
            unsafe { alloc::alloc::dealloc(base, layout) };
        }
    }
}

struct Scheduler {
    threads: Vec<Thread>,
    current: usize,
    next_tid: u32,
}

/// The scheduler's state: one CPU, touched only by the kernel with
/// interrupts off.
struct Cell(UnsafeCell<Scheduler>);
// SAFETY: one CPU, and the kernel runs with interrupts off: accesses never
// overlap (see `sched`).
unsafe impl Sync for Cell {}

static SCHED: Cell = Cell(UnsafeCell::new(Scheduler {
    threads: Vec::new(),
    current: 0,
    next_tid: 2,
}));

/// Read by the entry code: the running thread's kernel stack top and where
/// its FPU state is saved.
#[no_mangle]
static mut MAYFLY_KSTACK_TOP: u64 = 0;
#[no_mangle]
static mut MAYFLY_CURRENT_FX: u64 = 0;

fn sched() -> &'static mut Scheduler {
    // SAFETY: one CPU with interrupts off in the kernel, and no caller
    // keeps the reference across a switch (each function below takes it
    // afresh), so no two live references overlap.
    unsafe { &mut *SCHED.0.get() }
}

extern "C" {
    static __stack_top: u8;
    fn mayfly_switch(prev_ksp: *mut u64, next_ksp: u64);
    fn mayfly_syscall_return();
}

// Saves the callee-saved registers on the current kernel stack, stores its
// pointer, loads the next thread's and restores its registers: the next
// thread returns from its own call of this function (or, new, into the
// syscall return path with its frame above).
global_asm!(
    r#"
    .section .text.sched, "ax"
    .global mayfly_switch
mayfly_switch:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rsp, rsi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    ret
    "#
);

/// Makes the running program its first thread (tid 1) on the boot stack.
pub fn init() {
    let top = addr_of!(__stack_top) as u64;
    let s = sched();
    s.threads.push(Thread {
        tid: 1,
        kstack: None,
        kstack_top: top,
        ksp: 0,
        fx: Box::new(FxArea([0; 512])),
        fs_base: 0,
        clear_child_tid: 0,
        exiting: false,
        futex: None,
        woken: false,
        deadline: None,
        sigmask: 0,
        altstack: (0, 0, 2),
        resume: None,
    });
    s.current = 0;
    install(0);
}

/// Points the entry code, the TSS and FS at thread `index`.
fn install(index: usize) {
    let t = &sched().threads[index];
    // SAFETY: plain stores to the statics the entry code reads; interrupts
    // are off, so no entry can observe them half-written.
    unsafe {
        MAYFLY_KSTACK_TOP = t.kstack_top;
        MAYFLY_CURRENT_FX = &*t.fx as *const FxArea as u64;
    }
    crate::exceptions::set_kernel_stack(t.kstack_top);
    entry::set_fs_base(t.fs_base);
}

/// The running thread.
pub fn current() -> &'static mut Thread {
    let s = sched();
    let i = s.current;
    &mut s.threads[i]
}

/// The thread `tid`, if it exists.
pub fn thread(tid: u32) -> Option<&'static mut Thread> {
    sched().threads.iter_mut().find(|t| t.tid == tid)
}

/// The running thread's saved FPU state (what the kernel restores when
/// it returns to ring 3).
pub fn current_fx() -> &'static mut [u8; 512] {
    &mut current().fx.0
}

/// Number of threads that have not exited.
pub fn live_threads() -> usize {
    sched().threads.iter().filter(|t| !t.exiting).count()
}

/// Why a thread could not be made.
#[derive(Debug)]
pub enum SpawnError {
    /// No memory for its stack.
    NoMemory,
    /// [`MAX_THREADS`] already.
    TooMany,
}

/// Makes a thread that starts by returning from the current syscall with
/// `frame` (the parent's, with `rax` 0 and its own stack), `fs_base`, and
/// a copy of the parent's FPU state. Returns its tid.
pub fn spawn(frame: &SyscallFrame, fs_base: u64) -> Result<u32, SpawnError> {
    let s = sched();
    // Threads that exited and are not running can never run again: their
    // stacks go.
    let running = s.threads[s.current].tid;
    s.threads.retain(|t| !t.exiting || t.tid == running);
    s.current = s.threads.iter().position(|t| t.tid == running).unwrap_or(0);
    if s.threads.len() >= MAX_THREADS {
        return Err(SpawnError::TooMany);
    }
    let layout = Layout::from_size_align(KSTACK_BYTES, 16).map_err(|_| SpawnError::NoMemory)?;
    // SAFETY: a non-zero size.
    let base = unsafe { alloc_zeroed(layout) };
    if base.is_null() {
        return Err(SpawnError::NoMemory);
    }
    let top = base as u64 + KSTACK_BYTES as u64;
    // From the top: the frame the syscall return path pops, the address it
    // is entered at, and six zeros for `mayfly_switch` to pop.
    let frame_at = top - core::mem::size_of::<SyscallFrame>() as u64;
    let ret_at = frame_at - 8;
    let ksp = ret_at - 6 * 8;
    // SAFETY: all three lie in the stack just allocated (KSTACK_BYTES is
    // far larger), which nothing else uses yet.
    unsafe {
        core::ptr::write(frame_at as *mut SyscallFrame, *frame);
        core::ptr::write(
            ret_at as *mut u64,
            mayfly_syscall_return as *const () as u64,
        );
    }
    let mut fx = Box::new(FxArea([0; 512]));
    fx.0.copy_from_slice(&current().fx.0);
    let sigmask = current().sigmask;
    let tid = s.next_tid;
    s.next_tid += 1;
    s.threads.push(Thread {
        tid,
        kstack: Some((base, layout)),
        kstack_top: top,
        ksp,
        fx,
        fs_base,
        clear_child_tid: 0,
        exiting: false,
        futex: None,
        woken: false,
        deadline: None,
        sigmask,
        altstack: (0, 0, 2),
        resume: None,
    });
    Ok(tid)
}

/// Gives the CPU to the next thread that can run, if there is one; comes
/// back when this thread's turn comes again.
pub fn yield_now() {
    let s = sched();
    let n = s.threads.len();
    let from = s.current;
    let Some(to) = (1..=n)
        .map(|k| (from + k) % n)
        .find(|&i| i != from && !s.threads[i].exiting)
    else {
        return;
    };
    switch(from, to);
}

fn switch(from: usize, to: usize) {
    let s = sched();
    s.threads[from].fs_base = entry::fs_base();
    s.current = to;
    install(to);
    let next_ksp = s.threads[to].ksp;
    let prev_ksp: *mut u64 = &mut s.threads[from].ksp;
    // SAFETY: `next_ksp` is a stack saved by `mayfly_switch` (or laid out
    // by `spawn` the same way) of a thread that is not running; `prev_ksp`
    // is where this thread's is kept. Interrupts are off.
    unsafe { mayfly_switch(prev_ksp, next_ksp) };
}

/// Leaves the CPU for good: the running thread has exited (the process
/// has others). Its stack is freed by a later `spawn`.
pub fn exit_current() -> ! {
    current().exiting = true;
    yield_now();
    // No other thread can run: the caller ends the process before this.
    super::fatal(format_args!("the last thread left the CPU"))
}

/// Wakes up to `n` threads waiting on the futex at `addr`; how many.
pub fn futex_wake(addr: u64, n: usize) -> usize {
    let mut woken = 0;
    for t in sched().threads.iter_mut() {
        if woken == n {
            break;
        }
        if t.futex == Some(addr) && !t.exiting {
            t.futex = None;
            t.woken = true;
            woken += 1;
        }
    }
    woken
}

/// The timer's tick: preempts the thread that was running in ring 3.
pub fn tick() {
    yield_now();
}
