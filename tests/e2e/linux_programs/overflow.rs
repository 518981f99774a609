//! Overflows a thread's stack: Rust's SIGSEGV handler, on its alternate
//! stack, recognises the guard page and reports it before aborting.
use std::hint::black_box;

fn recurse(n: u64) -> u64 {
    let a = black_box([n; 512]);
    if n == 0 {
        0
    } else {
        black_box(recurse(n - 1)) + a[(n % 512) as usize]
    }
}

fn main() {
    println!("main starts");
    let h = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| recurse(u64::MAX))
        .unwrap();
    println!("{:?}", h.join());
}
