//! Threads as a Rust std program uses them, for `mayfly exec`: spawn and
//! join, a mutex with a condition variable, a channel answered by a second
//! thread while a third spins without a syscall (only preemption lets the
//! others run), and timed waits (sleep, a condvar timeout: futex timeouts).
use std::sync::{
    atomic::{AtomicBool, AtomicU64, Ordering},
    Arc, Condvar, Mutex,
};
use std::time::{Duration, Instant};
fn main() {
    let t0 = Instant::now();
    // 1. spawn + join, results
    let hs: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let mut s = 0u64;
                for k in 0..200_000u64 {
                    s = s.wrapping_add(k * i);
                }
                (i, s)
            })
        })
        .collect();
    for h in hs {
        let (i, s) = h.join().unwrap();
        println!("thread {i}: {s}");
    }
    // 2. mutex + condvar
    let pair = Arc::new((Mutex::new(0u32), Condvar::new()));
    let p2 = pair.clone();
    let h = std::thread::spawn(move || {
        for _ in 0..100 {
            let (m, c) = &*p2;
            *m.lock().unwrap() += 1;
            c.notify_one();
        }
    });
    {
        let (m, c) = &*pair;
        let mut g = m.lock().unwrap();
        while *g < 100 {
            g = c.wait(g).unwrap();
        }
        println!("condvar: {}", *g);
    }
    h.join().unwrap();
    // 3. spinning thread doesn't starve another
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let spins = Arc::new(AtomicU64::new(0));
    let sp2 = spins.clone();
    let spinner = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            sp2.fetch_add(1, Ordering::Relaxed);
        }
    });
    // The spinner is spinning (no syscalls) before the answer is asked for:
    // only preemption lets the answering thread run.
    while spins.load(Ordering::Relaxed) == 0 {
        std::thread::yield_now();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        tx.send("answer from the second thread").unwrap();
    });
    println!("{}", rx.recv_timeout(Duration::from_secs(5)).unwrap());
    stop.store(true, Ordering::Relaxed);
    spinner.join().unwrap();
    println!("spinner ran: {}", spins.load(Ordering::Relaxed) > 0);
    // 4. sleep in a thread, timed wait
    let t = Instant::now();
    let h = std::thread::spawn(|| std::thread::sleep(Duration::from_millis(50)));
    h.join().unwrap();
    println!("sleep 50ms took {} ms", t.elapsed().as_millis());
    let (m, c) = (Mutex::new(()), Condvar::new());
    let t = Instant::now();
    let _ = c
        .wait_timeout(m.lock().unwrap(), Duration::from_millis(30))
        .unwrap();
    println!("wait_timeout 30ms took {} ms", t.elapsed().as_millis());
    println!("parallelism {:?}", std::thread::available_parallelism());
    println!("total {} ms", t0.elapsed().as_millis());
}
