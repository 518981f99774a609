//! A plain program for the `mayfly exec` tests: prints its arguments and
//! what it finds in /var/task, writes and reads /tmp, then does what its
//! first argument says: `exit N`, `segv`, `sleep`.
use std::io::Write;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("args: {}", args.join(" "));
    println!("cwd: {}", std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default());
    println!("task root: {}", std::env::var("LAMBDA_TASK_ROOT").unwrap_or_default());
    println!("probe: {}", std::env::var("PROBE").unwrap_or_default());
    if let Ok(text) = std::fs::read_to_string("/var/task/input.txt") {
        println!("input: {}", text.trim());
    }
    std::fs::write("/tmp/scratch", b"written to /tmp").unwrap();
    println!("tmp: {}", std::fs::read_to_string("/tmp/scratch").unwrap());
    std::io::stdout().flush().unwrap();
    match args.get(1).map(String::as_str) {
        Some("exit") => std::process::exit(args.get(2).and_then(|n| n.parse().ok()).unwrap_or(0)),
        // SAFETY: none; the fault is the point.
        Some("segv") => unsafe { std::ptr::write_volatile(8 as *mut u8, 1) },
        Some("sleep") => std::thread::sleep(std::time::Duration::from_secs(3600)),
        _ => {}
    }
}
