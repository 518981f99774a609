//! `rust-probe`: a plain Rust std program for `mayfly exec` tests (and for
//! any other place that wants to see what a Linux program finds around it).
//! It uses the standard library (and tokio, for `--tokio-threads` alone), so
//! every system call it makes is one an ordinary Rust program makes.
//!
//! What it does, in this order, one line of output per fact:
//!
//! 1. `args: [...]`: `std::env::args()`, debug-formatted.
//! 2. `cwd: PATH`: `std::env::current_dir()`.
//! 3. `env NAME=VALUE` (or `env NAME unset`) for Lambda's reserved variables,
//!    `PATH`, `HOME`, `LANG`, `TZ`, and every variable named with `--env`.
//! 4. `file PATH SIZE fnv1a64=HEX` for every regular file under the listed
//!    directory (the working directory unless `--list DIR`), recursively,
//!    sorted by path, paths relative to that directory; `link PATH -> TARGET`
//!    for a symbolic link; then `files: N, BYTES bytes`.
//! 5. `tmp: ok (...)`: in a fresh directory under `/tmp` (or `--tmp DIR`) it
//!    creates a file, appends to it, renames it, reads it back and checks the
//!    contents, lists the directory, removes the file and the directory.
//!    `--no-tmp` skips this.
//! 6. `exit: N`, then it exits with N: the status given with `--exit N`
//!    (default 0), or 1 if anything above failed (each failure is named on
//!    stderr as `rust-probe: ...`).
//!
//! Two modes measure threads on the CPUs instead (and print only their
//! line, then `exit: N`):
//!
//! - `--pingpong MILLIS`: two threads bounce a counter between them, each
//!   spinning (without system calls) until the other has incremented it,
//!   for MILLIS ms; prints `pingpong rounds R cpus C`, R the increments
//!   made and C `available_parallelism()`. On one CPU a spinning thread
//!   holds it until it is preempted, so each round costs a time slice; on
//!   two they run at once.
//! - `--tokio-threads`: a default (multi-thread) tokio runtime runs 64
//!   tasks of a little CPU work each; prints `tokio workers W threads-used
//!   T`, W the runtime's worker threads and T how many of them ran tasks.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The variables printed unless asked for more: what Lambda sets for a
/// custom runtime, and what a shell would look at.
const ENV: &[&str] = &[
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "_HANDLER",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
    "PATH",
    "HOME",
    "LANG",
    "TZ",
];

/// What the probe measures instead of the facts above.
enum Mode {
    /// `--pingpong MILLIS`.
    Pingpong(Duration),
    /// `--tokio-threads`.
    TokioThreads,
}

struct Options {
    exit: u8,
    list: PathBuf,
    tmp: Option<PathBuf>,
    env: Vec<String>,
    mode: Option<Mode>,
}

fn usage() -> ! {
    eprintln!(
        "usage: rust-probe [--exit N] [--list DIR] [--tmp DIR | --no-tmp] [--env NAME]... \
         [--pingpong MILLIS | --tokio-threads]"
    );
    std::process::exit(2);
}

fn options() -> Options {
    let mut options = Options {
        exit: 0,
        list: PathBuf::from("."),
        tmp: Some(PathBuf::from("/tmp")),
        env: Vec::new(),
        mode: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--exit" => options.exit = value().parse().unwrap_or_else(|_| usage()),
            "--list" => options.list = PathBuf::from(value()),
            "--tmp" => options.tmp = Some(PathBuf::from(value())),
            "--no-tmp" => options.tmp = None,
            "--env" => options.env.push(value()),
            "--pingpong" => {
                let millis = value().parse().unwrap_or_else(|_| usage());
                options.mode = Some(Mode::Pingpong(Duration::from_millis(millis)));
            }
            "--tokio-threads" => options.mode = Some(Mode::TokioThreads),
            _ => usage(),
        }
    }
    options
}

/// FNV-1a, 64 bits: a checksum short enough to write by hand in a test.
fn fnv1a64(bytes: &[u8], mut hash: u64) -> u64 {
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// Size and checksum of one file, read in pieces (a package file may be
/// larger than is comfortable to hold at once).
fn checksum(path: &Path) -> io::Result<(u64, u64)> {
    let mut file = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let (mut size, mut hash) = (0u64, FNV_OFFSET);
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((size, hash));
        }
        size += n as u64;
        hash = fnv1a64(&buf[..n], hash);
    }
}

/// Every entry under `dir`, recursively, as paths relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>, failed: &mut bool) {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("rust-probe: cannot list {}: {e}", dir.display());
            *failed = true;
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                eprintln!("rust-probe: cannot read an entry of {}: {e}", dir.display());
                *failed = true;
                continue;
            }
        };
        let path = entry.path();
        let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir {
            walk(root, &path, out, failed);
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_path_buf());
        }
    }
}

fn list(root: &Path) -> bool {
    let mut failed = false;
    let mut paths = Vec::new();
    walk(root, root, &mut paths, &mut failed);
    paths.sort();
    let (mut count, mut total) = (0u64, 0u64);
    for rel in &paths {
        let path = root.join(rel);
        match fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => match fs::read_link(&path) {
                Ok(target) => println!("link {} -> {}", rel.display(), target.display()),
                Err(e) => {
                    eprintln!("rust-probe: cannot read link {}: {e}", path.display());
                    failed = true;
                }
            },
            Ok(m) if m.is_file() => match checksum(&path) {
                Ok((size, hash)) => {
                    if size != m.len() {
                        eprintln!(
                            "rust-probe: {}: stat says {} bytes, read {size}",
                            path.display(),
                            m.len()
                        );
                        failed = true;
                    }
                    println!("file {} {size} fnv1a64={hash:016x}", rel.display());
                    count += 1;
                    total += size;
                }
                Err(e) => {
                    eprintln!("rust-probe: cannot read {}: {e}", path.display());
                    failed = true;
                }
            },
            Ok(_) => println!("other {}", rel.display()),
            Err(e) => {
                eprintln!("rust-probe: cannot stat {}: {e}", path.display());
                failed = true;
            }
        }
    }
    println!("files: {count}, {total} bytes");
    !failed
}

/// Creates, appends, renames, reads back and removes, in a directory of
/// its own under `tmp`.
fn exercise_tmp(tmp: &Path) -> io::Result<String> {
    let dir = tmp.join(format!("rust-probe.{}", std::process::id()));
    fs::create_dir(&dir)?;
    let first = dir.join("first.txt");
    let second = dir.join("second.txt");
    fs::write(&first, b"written by rust-probe\n")?;
    fs::OpenOptions::new()
        .append(true)
        .open(&first)?
        .write_all(b"and appended\n")?;
    fs::rename(&first, &second)?;
    let back = fs::read(&second)?;
    let expected = b"written by rust-probe\nand appended\n";
    if back != expected {
        return Err(io::Error::other(format!(
            "read back {:?}, wrote {:?}",
            String::from_utf8_lossy(&back),
            String::from_utf8_lossy(expected)
        )));
    }
    if first.exists() {
        return Err(io::Error::other("the old name still exists after rename"));
    }
    let names: Vec<String> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<io::Result<_>>()?;
    if names != ["second.txt"] {
        return Err(io::Error::other(format!("the directory holds {names:?}")));
    }
    fs::remove_file(&second)?;
    fs::remove_dir(&dir)?;
    if dir.exists() {
        return Err(io::Error::other("the directory still exists after removal"));
    }
    Ok(format!(
        "created, appended, renamed, read back {} bytes, removed {}",
        back.len(),
        dir.display()
    ))
}

/// Spins between two clock readings: rare enough that the spinning is
/// almost all loads, often enough that a thread notices its deadline
/// within microseconds.
const SPINS_PER_CLOCK: u32 = 4096;

/// One side of the ping-pong: waits (spinning, no system call but a clock
/// reading every [`SPINS_PER_CLOCK`] spins) until `counter` has the parity
/// `mine`, then increments it; until `deadline`, or until the other side
/// has stopped.
fn bounce(counter: &AtomicU64, stop: &AtomicBool, mine: u64, deadline: Instant) {
    let mut spins = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let seen = counter.load(Ordering::Acquire);
        if seen % 2 == mine {
            counter.store(seen + 1, Ordering::Release);
            continue;
        }
        std::hint::spin_loop();
        spins += 1;
        if spins == SPINS_PER_CLOCK {
            spins = 0;
            if Instant::now() >= deadline {
                break;
            }
        }
    }
    // The other side may be waiting for a turn that will not come.
    stop.store(true, Ordering::Relaxed);
}

/// `--pingpong`: how many times two threads handed a counter to each
/// other within `time`.
fn pingpong(time: Duration) -> u64 {
    let counter = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + time;
    std::thread::scope(|scope| {
        scope.spawn(|| bounce(&counter, &stop, 0, deadline));
        scope.spawn(|| bounce(&counter, &stop, 1, deadline));
    });
    counter.load(Ordering::Relaxed)
}

/// How many tasks `--tokio-threads` spawns.
const TOKIO_TASKS: u64 = 64;

/// A little CPU work that the compiler cannot skip: an xorshift's
/// `rounds` steps from `seed`.
fn busy(seed: u64, rounds: u32) -> u64 {
    let mut x = seed | 1;
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x = std::hint::black_box(x);
    }
    x
}

/// `--tokio-threads`: the runtime's worker threads, and how many of them
/// ran one of [`TOKIO_TASKS`] small CPU-bound tasks.
fn tokio_threads() -> io::Result<(usize, usize)> {
    let runtime = tokio::runtime::Runtime::new()?;
    let workers = runtime.metrics().num_workers();
    let used = runtime.block_on(async {
        let tasks: Vec<_> = (0..TOKIO_TASKS)
            .map(|i| {
                tokio::spawn(async move {
                    std::hint::black_box(busy(i, 200_000));
                    std::thread::current().id()
                })
            })
            .collect();
        let mut threads = HashSet::new();
        for task in tasks {
            threads.insert(task.await?);
        }
        Ok::<_, tokio::task::JoinError>(threads.len())
    });
    Ok((workers, used.map_err(io::Error::other)?))
}

/// Runs `mode`, prints its line and `exit: N`.
fn measure(mode: &Mode, exit: u8) -> ExitCode {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ok = match mode {
        Mode::Pingpong(time) => {
            println!("pingpong rounds {} cpus {cpus}", pingpong(*time));
            true
        }
        Mode::TokioThreads => match tokio_threads() {
            Ok((workers, used)) => {
                println!("tokio workers {workers} threads-used {used}");
                true
            }
            Err(e) => {
                eprintln!("rust-probe: tokio: {e}");
                false
            }
        },
    };
    let status = if ok { exit } else { 1 };
    println!("exit: {status}");
    let _ = io::stdout().flush();
    ExitCode::from(status)
}

fn main() -> ExitCode {
    let options = options();
    if let Some(mode) = &options.mode {
        return measure(mode, options.exit);
    }
    let mut ok = true;

    println!("args: {:?}", std::env::args().collect::<Vec<_>>());
    match std::env::current_dir() {
        Ok(dir) => println!("cwd: {}", dir.display()),
        Err(e) => {
            eprintln!("rust-probe: no working directory: {e}");
            ok = false;
        }
    }
    for name in ENV
        .iter()
        .copied()
        .chain(options.env.iter().map(String::as_str))
    {
        match std::env::var_os(name) {
            Some(value) => println!("env {name}={}", value.to_string_lossy()),
            None => println!("env {name} unset"),
        }
    }
    ok &= list(&options.list);
    if let Some(tmp) = &options.tmp {
        match exercise_tmp(tmp) {
            Ok(what) => println!("tmp: ok ({what})"),
            Err(e) => {
                println!("tmp: failed");
                eprintln!("rust-probe: /tmp: {e}");
                ok = false;
            }
        }
    }
    let status = if ok { options.exit } else { 1 };
    println!("exit: {status}");
    let _ = io::stdout().flush();
    ExitCode::from(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pingpong_ends_in_time_and_counts_the_handovers() {
        let started = Instant::now();
        let rounds = pingpong(Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(rounds > 0);
    }

    #[test]
    fn tokio_tasks_run_on_the_workers() {
        let (workers, used) = tokio_threads().unwrap();
        assert!(workers >= 1);
        assert!((1..=workers).contains(&used), "{used} of {workers}");
    }

    #[test]
    fn fnv1a64_known_values() {
        assert_eq!(fnv1a64(b"", FNV_OFFSET), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a", FNV_OFFSET), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar", FNV_OFFSET), 0x8594_4171_f739_67e8);
    }
}
