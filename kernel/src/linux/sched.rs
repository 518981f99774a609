//! Threads and their scheduler, on all of the VM's CPUs.
//!
//! Every thread has its own kernel stack and its own saved FPU state, and
//! runs on whichever CPU is free. The kernel runs with interrupts off and
//! under the kernel lock ([`super::smp`]), so a thread leaves its CPU only
//! at two points: a syscall that must wait (it answers
//! [`Errno::ERESTARTNOINTR`] to the dispatcher, which yields here and runs
//! it again: a waiting syscall holds nothing while others run), and the
//! timer interrupt, which preempts a thread running in ring 3, so a thread
//! spinning without syscalls cannot starve the others or the network. A
//! CPU with no thread to run idles in [`idle_loop`].
//!
//! [`Errno::ERESTARTNOINTR`]: mayfly_linux::errno::Errno::ERESTARTNOINTR

use alloc::alloc::{alloc_zeroed, Layout};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::arch::global_asm;
use core::cell::UnsafeCell;
use core::ptr::addr_of;

use super::entry::{self, SyscallFrame};
use super::smp;
use crate::percpu::{self, MAX_CPUS};

/// Bytes of a thread's kernel stack (the first thread uses the boot
/// stack).
const KSTACK_BYTES: usize = 128 * 1024;
/// Bytes of the boot CPU's idle stack (the others idle on their own).
const IDLE_STACK_BYTES: usize = 16 * 1024;
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
    /// The CPU running it, if one is.
    pub cpu: Option<usize>,
    /// It is in a syscall that waits (made again until it completes).
    pub waiting: bool,
    /// The futex address it waits on, while it does.
    pub futex: Option<u64>,
    /// A FUTEX_WAKE chose it.
    pub woken: bool,
    /// When its waiting syscall gives up (monotonic ns), set by the first
    /// attempt and kept while it is restarted.
    pub deadline: Option<u64>,
    /// Its blocked signals.
    pub sigmask: u64,
    /// Signals sent to it and not yet delivered.
    pub pending: u64,
    /// Its own mask while a ppoll, pselect6 or epoll_pwait waits under
    /// the one it gave.
    pub saved_sigmask: Option<u64>,
    /// Which of `pending` came from kill (the others from tkill/tgkill).
    pub pending_from_kill: u64,
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
    /// The thread each CPU runs (an index into `threads`); `None` while
    /// it idles.
    running: [Option<usize>; MAX_CPUS],
    /// Each CPU's idle context while the CPU runs a thread.
    idle_ksp: [u64; MAX_CPUS],
    next_tid: u32,
}

/// The scheduler's state, touched only under the kernel lock.
struct Cell(UnsafeCell<Scheduler>);
// SAFETY: every access is made with the kernel lock held (the kernel runs
// under it, see `super::smp`), so accesses from different CPUs never
// overlap.
unsafe impl Sync for Cell {}

static SCHED: Cell = Cell(UnsafeCell::new(Scheduler {
    threads: Vec::new(),
    running: [None; MAX_CPUS],
    idle_ksp: [0; MAX_CPUS],
    next_tid: 2,
}));

fn sched() -> &'static mut Scheduler {
    // SAFETY: the kernel lock is held, and no caller keeps the reference
    // across a switch or across giving the lock up (each function below
    // takes it afresh), so no two live references overlap.
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

/// Lays out a context that `mayfly_switch` resumes by returning to `ret`
/// on the stack whose top is `top`: the return address, and six zeros for
/// it to pop. Returns the context's stack pointer.
///
/// # Safety
/// The 56 bytes below `top` must be a stack nothing else uses.
unsafe fn new_context(top: u64, ret: u64) -> u64 {
    let ret_at = top - 8;
    // SAFETY: within the stack, as the caller promises.
    unsafe { core::ptr::write(ret_at as *mut u64, ret) };
    ret_at - 6 * 8
}

extern "C" fn idle_entry() -> ! {
    idle_loop()
}

/// A CPU without a thread to run: runs one as soon as one is free, and
/// halts meanwhile. Entered with the kernel lock.
pub fn idle_loop() -> ! {
    loop {
        yield_now();
        smp::idle_wait();
    }
}

/// Makes the running program its first thread (tid 1) on the boot stack,
/// running on the boot CPU, and gives that CPU an idle context.
pub fn init() {
    let top = addr_of!(__stack_top) as u64;
    let idle_stack = Box::leak(Box::new(IdleStack([0; IDLE_STACK_BYTES])));
    let idle_top = idle_stack.0.as_ptr() as u64 + IDLE_STACK_BYTES as u64;
    let s = sched();
    // SAFETY: the idle stack was just allocated, for this alone.
    s.idle_ksp[0] = unsafe { new_context(idle_top - 8, idle_entry as *const () as u64) };
    s.threads.push(Thread {
        tid: 1,
        kstack: None,
        kstack_top: top,
        ksp: 0,
        fx: Box::new(FxArea([0; 512])),
        fs_base: 0,
        clear_child_tid: 0,
        exiting: false,
        cpu: Some(0),
        waiting: false,
        futex: None,
        woken: false,
        deadline: None,
        sigmask: 0,
        pending: 0,
        saved_sigmask: None,
        pending_from_kill: 0,
        altstack: (0, 0, 2),
        resume: None,
    });
    s.running[0] = Some(0);
    install(0);
}

#[repr(C, align(16))]
struct IdleStack([u8; IDLE_STACK_BYTES]);

/// Points this CPU's entry code, TSS and FS at thread `index`.
fn install(index: usize) {
    let t = &sched().threads[index];
    percpu::set_thread(t.kstack_top, &*t.fx as *const FxArea as u64);
    crate::exceptions::set_kernel_stack(t.kstack_top);
    entry::set_fs_base(t.fs_base);
}

/// The thread this CPU runs (never called from the idle loop).
pub fn current() -> &'static mut Thread {
    let s = sched();
    let i = s.running[percpu::index()].expect("a thread runs on this CPU");
    &mut s.threads[i]
}

/// The thread `tid`, if it exists.
pub fn thread(tid: u32) -> Option<&'static mut Thread> {
    sched().threads.iter_mut().find(|t| t.tid == tid)
}

/// The tid of the first thread for which `pred` holds.
pub fn find_thread(pred: impl Fn(&Thread) -> bool) -> Option<u32> {
    sched().threads.iter().find(|t| pred(t)).map(|t| t.tid)
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
    let running = s.running.map(|r| r.map(|i| s.threads[i].tid));
    s.threads.retain(|t| !t.exiting || t.cpu.is_some());
    for (slot, tid) in s.running.iter_mut().zip(running) {
        *slot = tid.and_then(|tid| s.threads.iter().position(|t| t.tid == tid));
    }
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
    // SAFETY: the frame and the context lie in the stack just allocated
    // (KSTACK_BYTES is far larger), which nothing else uses yet.
    let ksp = unsafe {
        core::ptr::write(frame_at as *mut SyscallFrame, *frame);
        new_context(frame_at, mayfly_syscall_return as *const () as u64)
    };
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
        cpu: None,
        waiting: false,
        futex: None,
        woken: false,
        deadline: None,
        sigmask,
        pending: 0,
        saved_sigmask: None,
        pending_from_kill: 0,
        altstack: (0, 0, 2),
        resume: None,
    });
    wake_an_idle_cpu(s);
    Ok(tid)
}

/// Wakes a CPU that idles, if one does: a thread is free to run.
fn wake_an_idle_cpu(s: &Scheduler) {
    let me = percpu::index();
    let configured = smp::configured() as usize;
    let idle = |c: &usize| *c != me && s.running[*c].is_none() && smp::is_online(*c);
    if let Some(cpu) = (0..configured).find(idle) {
        smp::wake(cpu);
    }
}

/// The next thread this CPU may run after `from` (round robin): one that
/// has not exited, that no CPU runs, and for which `also` holds.
fn next_free(s: &Scheduler, from: Option<usize>, also: impl Fn(&Thread) -> bool) -> Option<usize> {
    let n = s.threads.len();
    let start = from.map_or(0, |f| f + 1);
    (0..n).map(|k| (start + k) % n).find(|&i| {
        let t = &s.threads[i];
        Some(i) != from && !t.exiting && t.cpu.is_none() && also(t)
    })
}

/// Gives the CPU to the next thread that can run, if there is one; comes
/// back when this thread's turn comes again (on whichever CPU).
pub fn yield_now() {
    let s = sched();
    let from = s.running[percpu::index()];
    if let Some(to) = next_free(s, from, |_| true) {
        switch(from, Some(to));
    }
}

/// Whether another CPU runs a thread that waits: that CPU makes the
/// waiting syscalls again (the free waiting threads' too, in turn), so
/// this one need not.
pub fn another_cpu_polls() -> bool {
    let s = sched();
    let me = percpu::index();
    s.running
        .iter()
        .enumerate()
        .any(|(c, r)| c != me && r.is_some_and(|i| s.threads[i].waiting))
}

/// Leaves the running thread, which waits, to the CPU that polls: this
/// CPU runs a thread that does not wait, or idles. Comes back when the
/// thread is run again (on whichever CPU).
pub fn park() {
    let s = sched();
    let from = s.running[percpu::index()];
    let to = next_free(s, from, |t| !t.waiting);
    switch(from, to);
}

/// Switches this CPU from `from` to `to` (`None`: its idle context).
fn switch(from: Option<usize>, to: Option<usize>) {
    let cpu = percpu::index();
    let s = sched();
    let prev_ksp: *mut u64 = match from {
        Some(f) => {
            let t = &mut s.threads[f];
            t.fs_base = entry::fs_base();
            t.cpu = None;
            &mut t.ksp
        }
        None => &mut s.idle_ksp[cpu],
    };
    let next_ksp = match to {
        Some(t) => {
            s.threads[t].cpu = Some(cpu);
            s.threads[t].ksp
        }
        None => s.idle_ksp[cpu],
    };
    s.running[cpu] = to;
    if let Some(t) = to {
        install(t);
    }
    // A thread left runnable: an idle CPU may take it. (A waiting one is
    // left to the polling CPU.)
    if from.is_some_and(|f| !s.threads[f].exiting && !s.threads[f].waiting) {
        wake_an_idle_cpu(s);
    }
    // SAFETY: `next_ksp` is a context saved by `mayfly_switch` (or laid
    // out by `new_context`) that no CPU runs; `prev_ksp` is where this
    // one's is kept. Interrupts are off and the kernel lock is held, which
    // the context resumed here goes on holding.
    unsafe { mayfly_switch(prev_ksp, next_ksp) };
}

/// Leaves the CPU for good: the running thread has exited (the process
/// has others). Its stack is freed by a later `spawn`.
pub fn exit_current() -> ! {
    current().exiting = true;
    let s = sched();
    let from = s.running[percpu::index()];
    let to = next_free(s, from, |_| true);
    switch(from, to);
    // An exiting thread is never chosen again.
    super::fatal(format_args!("an exited thread ran again"))
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
    if woken > 0 {
        wake_an_idle_cpu(sched());
    }
    woken
}

/// The timer's tick: preempts the thread that was running in ring 3.
pub fn tick() {
    yield_now();
}
