//! Signals the program sends itself, for `mayfly exec`: a handler runs
//! before pthread_kill to itself returns; a thread spinning without a
//! syscall gets its signal (on its own thread) within milliseconds; a
//! blocked signal waits until it is unblocked; a read a handler interrupts
//! is made again under SA_RESTART and fails with EINTR without it; ppoll
//! waits under the mask it is given, and the thread's own comes back, as
//! sigsuspend does; sigpending shows a blocked signal.
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

#[repr(C)]
struct SigAction {
    handler: usize,
    mask: [u64; 16],
    flags: i32,
    restorer: usize,
}

extern "C" {
    fn sigaction(sig: i32, act: *const SigAction, old: *mut SigAction) -> i32;
    fn pthread_kill(thread: usize, sig: i32) -> i32;
    fn pthread_self() -> usize;
    fn sigprocmask(how: i32, set: *const [u64; 16], old: *mut [u64; 16]) -> i32;
    fn pipe(fds: *mut i32) -> i32;
    fn read(fd: i32, buf: *mut u8, n: usize) -> isize;
    fn write(fd: i32, buf: *const u8, n: usize) -> isize;
    fn gettid() -> i32;
    fn ppoll(fds: *mut u8, n: u64, timeout: *const [i64; 2], mask: *const [u64; 16]) -> i32;
    fn sigsuspend(mask: *const [u64; 16]) -> i32;
    fn sigpending(set: *mut [u64; 16]) -> i32;
    fn __errno_location() -> *mut i32;
}

const SIGUSR1: i32 = 10;
const SIGUSR2: i32 = 12;
const SA_RESTART: i32 = 0x1000_0000;

static HITS: AtomicU32 = AtomicU32::new(0);
static FLAG: AtomicBool = AtomicBool::new(false);
static HANDLER_TID: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(_: i32) {
    HITS.fetch_add(1, SeqCst);
    // SAFETY: gettid is async-signal-safe.
    HANDLER_TID.store(unsafe { gettid() }, SeqCst);
    FLAG.store(true, SeqCst);
}

fn install(sig: i32, flags: i32) {
    let act = SigAction { handler: on_signal as *const () as usize, mask: [0; 16], flags, restorer: 0 };
    // SAFETY: a valid sigaction for a handler that only touches atomics.
    assert_eq!(unsafe { sigaction(sig, &act, std::ptr::null_mut()) }, 0);
}

fn main() {
    install(SIGUSR1, SA_RESTART);
    install(SIGUSR2, 0);

    // SAFETY: signalling this very thread, whose handler is installed.
    unsafe { pthread_kill(pthread_self(), SIGUSR1) };
    println!("self: {} handler run before pthread_kill returned", HITS.load(SeqCst));

    FLAG.store(false, SeqCst);
    let spinner = std::thread::spawn(|| {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { gettid() };
        let start = Instant::now();
        while !FLAG.load(SeqCst) {
            std::hint::spin_loop();
        }
        (tid, start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(20));
    use std::os::unix::thread::JoinHandleExt;
    // SAFETY: the spinner is alive until FLAG is set, which only its
    // handler does.
    unsafe { pthread_kill(spinner.as_pthread_t() as usize, SIGUSR1) };
    let sent = Instant::now();
    let (tid, _) = spinner.join().unwrap();
    println!(
        "spinner: handler ran on the spinner thread {} after {} ms",
        HANDLER_TID.load(SeqCst) == tid,
        sent.elapsed().as_millis()
    );

    let before = HITS.load(SeqCst);
    let mut set = [0u64; 16];
    set[0] = 1 << (SIGUSR1 - 1);
    // SAFETY: valid sigsets; SIG_BLOCK 0, SIG_UNBLOCK 1.
    unsafe {
        sigprocmask(0, &set, std::ptr::null_mut());
        pthread_kill(pthread_self(), SIGUSR1);
    }
    let while_blocked = HITS.load(SeqCst) - before;
    // SAFETY: as above.
    unsafe { sigprocmask(1, &set, std::ptr::null_mut()) };
    println!(
        "blocked: {while_blocked} while blocked, {} once unblocked",
        HITS.load(SeqCst) - before
    );

    for (sig, name) in [(SIGUSR1, "restart"), (SIGUSR2, "no-restart")] {
        let mut fds = [0i32; 2];
        // SAFETY: a two-int array for pipe's descriptors.
        assert_eq!(unsafe { pipe(fds.as_mut_ptr()) }, 0);
        let reader = std::thread::spawn(move || {
            let mut byte = 0u8;
            // SAFETY: reading one byte into a local from our pipe.
            let n = unsafe { read(fds[0], &mut byte, 1) };
            // SAFETY: errno is this thread's.
            let errno = unsafe { *__errno_location() };
            (n, errno)
        });
        std::thread::sleep(Duration::from_millis(30));
        // SAFETY: the reader is alive: it waits for the byte written below.
        unsafe { pthread_kill(reader.as_pthread_t() as usize, sig) };
        std::thread::sleep(Duration::from_millis(30));
        // SAFETY: writing one byte from a local to our pipe.
        unsafe { write(fds[1], b"x".as_ptr(), 1) };
        let (n, errno) = reader.join().unwrap();
        println!("{name}: read returned {n} errno {errno}");
    }
    ppoll_under_its_own_mask();
    suspend_and_pending();
}

fn suspend_and_pending() {
    let mut usr1 = [0u64; 16];
    usr1[0] = 1 << (SIGUSR1 - 1);
    let mut old = [0u64; 16];
    // SAFETY: valid sigsets; SIG_BLOCK.
    unsafe { sigprocmask(0, &usr1, &mut old) };
    let before = HITS.load(SeqCst);
    // SAFETY: this thread, its handler installed; the signal stays pending.
    unsafe { pthread_kill(pthread_self(), SIGUSR1) };
    let mut pending = [0u64; 16];
    // SAFETY: a valid sigset to fill.
    unsafe { sigpending(&mut pending) };
    let shown = pending[0] & usr1[0] != 0;
    // SAFETY: sigsuspend with an empty mask: the pending signal's handler
    // runs, then it returns -1 (EINTR).
    let r = unsafe { sigsuspend(&[0u64; 16]) };
    // SAFETY: errno is this thread's.
    let errno = unsafe { *__errno_location() };
    let mut now = [0u64; 16];
    // SAFETY: only reads the mask.
    unsafe { sigprocmask(0, std::ptr::null(), &mut now) };
    println!(
        "sigsuspend: pending shown {shown} returned {r} errno {errno} handler {} mask restored {}",
        HITS.load(SeqCst) - before,
        now[0] & usr1[0] != 0
    );
    // SAFETY: restores the mask from before.
    unsafe { sigprocmask(2, &old, std::ptr::null_mut()) };
}

fn ppoll_under_its_own_mask() {
    let mut usr1 = [0u64; 16];
    usr1[0] = 1 << (SIGUSR1 - 1);
    let mut old = [0u64; 16];
    // SAFETY: valid sigsets; SIG_BLOCK.
    unsafe { sigprocmask(0, &usr1, &mut old) };
    // SAFETY: pthread_self has no preconditions.
    let main = unsafe { pthread_self() } as u64;
    let before = HITS.load(SeqCst);
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        // SAFETY: main is alive: it joins this thread.
        unsafe { pthread_kill(main as usize, SIGUSR1) };
    });
    let timeout = [2i64, 0];
    let none = [0u64; 16];
    let start = Instant::now();
    // SAFETY: no descriptors; a valid timespec and sigset.
    let n = unsafe { ppoll(std::ptr::null_mut(), 0, &timeout, &none) };
    // SAFETY: errno is this thread's.
    let errno = unsafe { *__errno_location() };
    let took = start.elapsed();
    sender.join().unwrap();
    let mut now = [0u64; 16];
    // SAFETY: only reads the mask (a null set).
    unsafe { sigprocmask(0, std::ptr::null(), &mut now) };
    println!(
        "ppoll: returned {n} errno {errno} handler {} early {} mask restored {}",
        HITS.load(SeqCst) - before,
        took < Duration::from_secs(1),
        now[0] & usr1[0] != 0
    );
    // SAFETY: restores the mask from before.
    unsafe { sigprocmask(2, &old, std::ptr::null_mut()) };
}
