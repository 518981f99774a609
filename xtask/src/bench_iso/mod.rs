//! `cargo xtask bench [--quick] [--only wordcount|urls|sources]`: what each kind of
//! isolation costs on this machine, every row measured in one run so that
//! the ratios compare like with like. Writes `target/bench/report.md` and
//! `target/bench/report.svg`.
//!
//! The latency rows run interleaved (one run of each in turn) so that a
//! change in the machine's load touches every row alike; throughput, peak
//! memory, the warm pool and the CPU-bound word count (`wordcount.rs`: one
//! vCPU against two) come after, each alone, because they load the
//! machine differently. A row that fails says why and the others go on.
//! `--only wordcount` runs the word count alone (into
//! `target/bench/wordcount.md`); `--only urls` function URLs against
//! Invoke; `--only sources` the event sources' latency from event to
//! function start (`sources.rs`, real brokers, a database and an S3 store:
//! into `target/bench/sources.md`).

mod api;
mod findings;
mod jailed;
mod linux;
mod procs;
mod report;
mod runtime_api;
mod sources;
mod stats;
mod svg;
mod urls;
mod wordcount;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use mayfly_vm::accel::{self, AccelRequest};

use crate::{bootstrap, images, util};
use procs::RssProbe;
use report::{Outcome, Rate, Report, Row, Throughput};
use stats::Summary;

/// The floor row's label (the table's ratios are to it).
pub const FLOOR: &str = "QEMU floor";
/// The jailed floor row's label.
pub const FLOOR_JAILED: &str = "QEMU floor, jailed";
const STATIC: &str = "static process";
const BWRAP: &str = "bubblewrap sandbox";
const RUN: &str = "mayfly run echo";
const COLD: &str = "API invoke, cold";
const WARM: &str = "API invoke, warm (provisioned)";
const LINUX: &str = "Linux microVM";
/// The Linux-function rows (issues 9 and 10): the example Linux functions
/// through the API, and the same binaries outside Mayfly.
const COLD_RUST: &str = "API cold: rust-echo (Linux)";
const COLD_RUST_MT: &str = "API cold: rust-echo-mt (Linux)";
const COLD_GO: &str = "API cold: go-echo (Linux)";
const COLD_C: &str = "API cold: c-echo (Linux)";
const FN_PROCESS: &str = "rust-echo, process";
const FN_BWRAP: &str = "rust-echo, bubblewrap";
const FN_LINUX: &str = "rust-echo, Linux microVM";
const FN_LINUX_MT: &str = "rust-echo-mt, Linux microVM";
const FN_LINUX_GO: &str = "go-echo, Linux microVM";

/// The example Linux functions the API rows deploy: name, the cold row's
/// label and what it measures.
const LINUX_FUNCTIONS: [(&str, &str, &str); 4] = [
    ("rust-echo", COLD_RUST, "same, of rust-echo: the `lambda_runtime` echo, a static Linux `bootstrap` (tokio current_thread), cold"),
    ("rust-echo-mt", COLD_RUST_MT, "same, of rust-echo-mt: the same echo on tokio's default multi-thread runtime (worker threads: clone, futexes), cold"),
    ("go-echo", COLD_GO, "same, of go-echo: a runtime-API loop on Go's net/http (CGO_ENABLED=0: goroutines on threads, a pipe-woken poller), cold"),
    ("c-echo", COLD_C, "same, of c-echo: a musl C runtime-API loop on plain sockets, static Linux `bootstrap`, cold"),
];

/// The binaries also measured outside Mayfly (spawn to response received
/// at a runtime API in this process): a plain process, bubblewrap and the
/// Linux microVM's guest, each a label and what it measures.
struct Outside {
    name: &'static str,
    process: (&'static str, &'static str),
    bwrap: (&'static str, &'static str),
    linux: (&'static str, &'static str),
}

const FN_BWRAP_WHAT: &str = "same in bubblewrap (`--unshare-all --share-net`: the network namespace shared, to reach the API on loopback)";

const OUTSIDE: [Outside; 3] = [
    Outside {
        name: "rust-echo",
        process: (FN_PROCESS, "rust-echo's `bootstrap` as a plain process, one event from a runtime API in this process: spawn to response received"),
        bwrap: (FN_BWRAP, FN_BWRAP_WHAT),
        linux: (FN_LINUX, "rust-echo's `bootstrap` in the Linux microVM's guest (`/init`: insmod virtio-net, `ip` up, run it): spawn to response received; acpi=on and QEMU user networking for these rows only"),
    },
    Outside {
        name: "rust-echo-mt",
        process: ("rust-echo-mt, process", "rust-echo-mt's `bootstrap` as a plain process, one event: spawn to response received"),
        bwrap: ("rust-echo-mt, bubblewrap", FN_BWRAP_WHAT),
        linux: (FN_LINUX_MT, "same, of rust-echo-mt"),
    },
    Outside {
        name: "go-echo",
        process: ("go-echo, process", "go-echo's `bootstrap` as a plain process, one event: spawn to response received"),
        bwrap: ("go-echo, bubblewrap", FN_BWRAP_WHAT),
        linux: (FN_LINUX_GO, "same, of go-echo"),
    },
];

/// How much of everything: `--quick` keeps the whole run under a minute.
struct Plan {
    runs: usize,
    linux_runs: usize,
    warm_runs: usize,
    memory_runs: usize,
    linux_memory_runs: usize,
    window: Duration,
    /// Between warm invokes, for the pool to boot a replacement.
    warm_pause: Duration,
}

const FULL: Plan = Plan {
    runs: 20,
    linux_runs: 20,
    warm_runs: 20,
    memory_runs: 10,
    linux_memory_runs: 3,
    window: Duration::from_secs(6),
    warm_pause: Duration::from_millis(500),
};
const QUICK: Plan = Plan {
    runs: 5,
    linux_runs: 2,
    warm_runs: 5,
    memory_runs: 3,
    linux_memory_runs: 1,
    window: Duration::from_millis(1500),
    warm_pause: Duration::from_millis(400),
};
const CONCURRENCY: [usize; 4] = [1, 2, 4, 8];

/// One run of a row: wall ms; through the probe when given (for peak RSS).
type Measure<'a> = Box<dyn FnMut(Option<&RssProbe>) -> Result<f64> + 'a>;

/// The runs of one latency row.
struct Series<'a> {
    label: &'static str,
    what: &'static str,
    runs: usize,
    /// One run: wall ms; through the probe when given (for peak RSS).
    measure: Measure<'a>,
    ms: Vec<f64>,
    /// Runs through the RSS probe (0: RSS not measured for this row).
    rss_runs: usize,
    rss: Vec<f64>,
    /// Set when the row cannot (or can no longer) be measured.
    stopped: Option<Outcome>,
}

impl<'a> Series<'a> {
    fn new(
        label: &'static str,
        what: &'static str,
        runs: usize,
        rss_runs: usize,
        measure: impl FnMut(Option<&RssProbe>) -> Result<f64> + 'a,
    ) -> Self {
        Series {
            label,
            what,
            runs,
            measure: Box::new(measure),
            ms: Vec::new(),
            rss_runs,
            rss: Vec::new(),
            stopped: None,
        }
    }

    fn unavailable(label: &'static str, what: &'static str, outcome: Outcome) -> Self {
        let mut s = Series::new(label, what, 0, 0, |_| bail!("unavailable"));
        s.stopped = Some(outcome);
        s
    }

    /// One run, recorded unless `warmup`; the first error stops the row.
    fn step(&mut self, warmup: bool) {
        if self.stopped.is_some() {
            return;
        }
        match (self.measure)(None) {
            Ok(ms) if !warmup => self.ms.push(ms),
            Ok(_) => {}
            Err(e) => {
                eprintln!("xtask: bench: {} failed: {e:#}", self.label);
                self.stopped = Some(Outcome::Failed(format!("{e:#}")));
            }
        }
    }

    /// The peak-RSS runs, through `probe`.
    fn probe_rss(&mut self, probe: &RssProbe) {
        if self.stopped.is_some() || self.rss_runs == 0 {
            return;
        }
        probe.collect();
        for _ in 0..self.rss_runs {
            if let Err(e) = (self.measure)(Some(probe)) {
                eprintln!(
                    "xtask: bench: {} under the RSS probe failed: {e:#}",
                    self.label
                );
                break;
            }
        }
        self.rss = probe.collect().into_iter().map(|k| k as f64).collect();
    }

    fn row(self) -> Row {
        let outcome = match (self.stopped, Summary::of(&self.ms)) {
            (Some(o), _) => o,
            (None, Some(ms)) => Outcome::Measured {
                ms,
                rss_kib: Summary::of(&self.rss),
                remark: None,
            },
            (None, None) => Outcome::Failed("no runs".into()),
        };
        Row {
            label: self.label,
            what: self.what,
            outcome,
        }
    }
}

/// `cargo xtask bench`'s usage.
const USAGE: &str = "usage: cargo xtask bench [--quick] [--only wordcount|urls|sources]";

/// The sections `--only` can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Only {
    /// The CPU-bound word count ([`wordcount::TITLE`]).
    WordCount,
    /// Function URLs against Invoke ([`urls::TITLE`]).
    Urls,
    /// The event sources' latency ([`sources::TITLE`]).
    Sources,
}

/// `[--quick] [--only SECTION]`, in any order.
fn parse(args: &[String]) -> Result<(&'static Plan, Option<Only>)> {
    let (mut plan, mut only) = (&FULL, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => plan = &QUICK,
            "--only" => match args.next().map(String::as_str) {
                Some("wordcount") => only = Some(Only::WordCount),
                Some("urls") => only = Some(Only::Urls),
                Some("sources") => only = Some(Only::Sources),
                _ => bail!("--only takes a section: wordcount, urls or sources\n{USAGE}"),
            },
            _ => bail!("{USAGE}"),
        }
    }
    Ok((plan, only))
}

/// Runs the benchmark.
pub fn run(args: &[String]) -> Result<()> {
    let (plan, only) = parse(args)?;
    if only == Some(Only::Urls) {
        return run_urls(plan);
    }
    if only == Some(Only::Sources) {
        return run_sources(plan);
    }
    if only == Some(Only::WordCount) {
        return run_wordcount();
    }
    let started = Instant::now();
    let mut last = Instant::now();
    // Where the time goes, so that a slow run can be explained.
    let mut phase = |what: &str| {
        eprintln!(
            "xtask: bench: {what}: {:.1} s",
            last.elapsed().as_secs_f64()
        );
        last = Instant::now();
    };
    bootstrap::ensure_host_tools()?;
    let built = images::build()?;
    let mayfly = util::build_mayfly()?;
    let echo = built
        .iter()
        .find(|i| i.name == "echo")
        .context("echo image not built")?;
    let floor = util::images_dir().join("floor.elf");
    let dir = util::root().join("target").join("bench");
    std::fs::create_dir_all(&dir)?;
    phase("building");

    let choice = accel::detect(AccelRequest::Auto).context("choosing the accelerator")?;
    println!("accelerator: {} ({})", choice.accel, choice.reason);
    let qemu = procs::Qemu::new(choice.accel);
    let jailed = jailed::JailedFloor::new(&qemu);
    let machine = findings::machine(&qemu, &choice);
    let mut notes = Vec::new();
    if let Ok(j) = &jailed {
        notes.push(format!("QEMU floor, jailed: {}.", j.parts()));
    }

    // Everything the rows need, each of which may fail alone.
    let noop = procs::build_noop(&dir);
    let bwrap = match &noop {
        Ok(prog) => bwrap_usable(prog),
        Err(e) => Err(format!("no static program: {e:#}")),
    };
    eprintln!("xtask: bench: preparing the Linux guest (apt-get download into target/bench/cache)");
    let guest = linux::prepare(&dir.join("cache"));
    let server = api::Server::start(&mayfly, &dir).and_then(|s| {
        s.create_echo(&echo.zip)?;
        Ok(s)
    });
    // The example Linux functions, deployed beside echo; each row fails
    // alone if its function cannot be.
    let linux_fns: Vec<std::result::Result<(), String>> = LINUX_FUNCTIONS
        .iter()
        .map(|(name, _, _)| {
            let image = built
                .iter()
                .find(|i| i.name == *name)
                .ok_or_else(|| format!("{name} was not built"))?;
            match &server {
                Ok(s) => s
                    .create(name, &image.zip)
                    .map_err(|e| format!("CreateFunction {name}: {e:#}")),
                Err(e) => Err(format!("mayfly serve: {e:#}")),
            }
        })
        .collect();
    let rapi = runtime_api::RuntimeApi::start();
    // Each binary measured outside Mayfly, and its Linux guest's initramfs.
    type Prepared<'a> = (
        &'a Outside,
        Result<&'a Path, String>,
        Result<PathBuf, String>,
    );
    let outside: Vec<Prepared<'_>> = OUTSIDE
        .iter()
        .map(|o| {
            let bin = built
                .iter()
                .find(|i| i.name == o.name)
                .map(|i| i.elf.as_path())
                .ok_or_else(|| format!("{} was not built", o.name));
            let initrd = match (&guest, &rapi, &bin) {
                (Ok(g), Ok(r), Ok(bin)) => linux::function_initrd(
                    g,
                    &dir.join("cache"),
                    o.name,
                    bin,
                    r.port(),
                    &runtime_api::LAMBDA_ENV,
                )
                .map_err(|e| format!("{e:#}")),
                (Err(e), _, _) => Err(format!(
                    "cannot get Debian's kernel and busybox-static: {e:#}"
                )),
                (_, Err(e), _) => Err(format!("runtime API: {e:#}")),
                (_, _, Err(e)) => Err(e.clone()),
            };
            (o, bin, initrd)
        })
        .collect();
    let console = dir.join("linux-console.log");
    phase("preparing the rows");

    let mut series: Vec<Series<'_>> = Vec::new();
    match &noop {
        Ok(prog) => series.push(Series::new(
            STATIC,
            "static C program, fork/exec/wait (no isolation)",
            plan.runs,
            plan.memory_runs,
            |p| procs::run_bare(prog, p).map(|r| r.ms()),
        )),
        Err(e) => series.push(Series::unavailable(
            STATIC,
            "static C program",
            Outcome::Failed(format!("{e:#}")),
        )),
    }
    let bwrap_what =
        "same in bubblewrap (`--unshare-all`: new user/pid/net/mount/ipc/uts namespaces)";
    match (&noop, &bwrap) {
        (Ok(prog), Ok(())) => series.push(Series::new(
            BWRAP,
            bwrap_what,
            plan.runs,
            plan.memory_runs,
            |p| procs::run_bwrap(prog, p).map(|r| r.ms()),
        )),
        (_, Err(why)) => series.push(Series::unavailable(
            BWRAP,
            bwrap_what,
            Outcome::Skipped(why.clone()),
        )),
        (Err(e), Ok(())) => series.push(Series::unavailable(
            BWRAP,
            bwrap_what,
            Outcome::Failed(format!("{e:#}")),
        )),
    }
    series.push(Series::new(
        FLOOR,
        "QEMU floor: Mayfly's QEMU flags, an ELF that powers off at once",
        plan.runs,
        plan.memory_runs,
        |p| qemu.boot_floor(&floor, p).map(|r| r.ms()),
    ));
    let jailed_what = "same, started by Mayfly's spawn in the jail `--jail auto` gives (uid, namespaces, root, seccomp, cgroup, rlimits)";
    match &jailed {
        Ok(j) => series.push(Series::new(FLOOR_JAILED, jailed_what, plan.runs, 0, |_| {
            j.boot(&floor).map(|r| r.ms())
        })),
        Err(e) => series.push(Series::unavailable(
            FLOOR_JAILED,
            jailed_what,
            Outcome::Failed(format!("{e:#}")),
        )),
    }
    series.push(Series::new(
        RUN,
        "`mayfly run echo.elf --event …` (whole command)",
        plan.runs,
        plan.memory_runs,
        |p| run_cli(&mayfly, &echo.elf, p.map(|p| (p, qemu.binary.as_path()))),
    ));
    let cold_what =
        "API sync Invoke of echo (native Mayfly image), cold (SigV4-signed HTTP round trip)";
    match &server {
        Ok(s) => series.push(Series::new(COLD, cold_what, plan.runs, 0, |_| {
            s.invoke(None, false).map(|(d, _)| d.as_secs_f64() * 1000.0)
        })),
        Err(e) => series.push(Series::unavailable(
            COLD,
            cold_what,
            Outcome::Failed(format!("mayfly serve: {e:#}")),
        )),
    }
    for ((name, label, what), deployed) in LINUX_FUNCTIONS.into_iter().zip(&linux_fns) {
        match (&server, deployed) {
            (Ok(s), Ok(())) => series.push(Series::new(label, what, plan.runs, 0, move |_| {
                s.invoke_fn(name, None, false)
                    .map(|(d, _)| d.as_secs_f64() * 1000.0)
            })),
            (_, Err(e)) => {
                series.push(Series::unavailable(label, what, Outcome::Failed(e.clone())))
            }
            (Err(e), _) => series.push(Series::unavailable(
                label,
                what,
                Outcome::Failed(format!("mayfly serve: {e:#}")),
            )),
        }
    }
    let timeout = Duration::from_secs(10);
    for (o, bin, _) in &outside {
        let name = o.name;
        match (&rapi, bin) {
            (Ok(r), Ok(bin)) => {
                let bin = *bin;
                series.push(Series::new(
                    o.process.0,
                    o.process.1,
                    plan.runs,
                    0,
                    move |_| {
                        let spawn = || {
                            procs::function_process(bin, r.port(), &runtime_api::LAMBDA_ENV)
                                .spawn()
                                .with_context(|| format!("cannot run {name}"))
                        };
                        r.one_event(spawn, timeout, String::new)
                            .map(|d| d.as_secs_f64() * 1000.0)
                    },
                ));
                match &bwrap {
                    Ok(()) => {
                        series.push(Series::new(o.bwrap.0, o.bwrap.1, plan.runs, 0, move |_| {
                            let spawn = || {
                                procs::function_bwrap(bin, r.port(), &runtime_api::LAMBDA_ENV)
                                    .spawn()
                                    .context("cannot run bwrap")
                            };
                            r.one_event(spawn, timeout, String::new)
                                .map(|d| d.as_secs_f64() * 1000.0)
                        }))
                    }
                    Err(why) => series.push(Series::unavailable(
                        o.bwrap.0,
                        o.bwrap.1,
                        Outcome::Skipped(why.clone()),
                    )),
                }
            }
            (rapi, bin) => {
                let why = match (rapi, bin) {
                    (Err(e), _) => format!("runtime API: {e:#}"),
                    (_, Err(e)) => e.clone(),
                    _ => unreachable!("both were Ok"),
                };
                for (label, what) in [o.process, o.bwrap] {
                    series.push(Series::unavailable(
                        label,
                        what,
                        Outcome::Failed(why.clone()),
                    ));
                }
            }
        }
    }
    let linux_what = "Linux (Debian kernel, busybox initramfs) on microvm via PVH, same accelerator, start to exit";
    let linux_series = match &guest {
        Ok(g) => {
            let boot = procs::LinuxBoot {
                vmlinux: &g.vmlinux,
                initrd: &g.initrd,
                cmdline: linux::CMDLINE,
                console: &console,
                marker: linux::MARKER,
            };
            notes.push(format!("Linux guest: {} (vmlinux extracted from its bzImage), busybox-static, command line `{}`.", g.kernel_package, linux::CMDLINE));
            let qemu = &qemu;
            Series::new(
                LINUX,
                linux_what,
                plan.linux_runs,
                plan.linux_memory_runs,
                move |p| qemu.boot_linux(&boot, p).map(|r| r.ms()),
            )
        }
        Err(e) => Series::unavailable(
            LINUX,
            linux_what,
            Outcome::Skipped(format!(
                "cannot get Debian's kernel and busybox-static: {e:#}"
            )),
        ),
    };
    series.push(linux_series);
    if let (Ok(_), Ok(r)) = (&guest, &rapi) {
        notes.push(format!("Linux microVM rows of the functions ({}): the guest's `/init` loads {} from the kernel package, gives eth0 {} and runs the function's `bootstrap` (the very binary its zip holds, in an initramfs of its own) with AWS_LAMBDA_RUNTIME_API={}:{}; QEMU runs with Mayfly's flags but `acpi=on` (Debian's kernel finds virtio-mmio devices only through ACPI) and `-netdev user` (slirp, reaching this host's loopback) in place of Mayfly's socket pair: both only for these rows. Timed from QEMU's spawn to the response arriving at the runtime API here; QEMU is killed then.", OUTSIDE.map(|o| o.name).join(", "), linux::NET_MODULES.join(", "), linux::GUEST_ADDR, linux::HOST_FROM_GUEST, r.port()));
    }
    for (o, _, initrd) in &outside {
        let (label, what) = o.linux;
        match (&guest, &rapi, initrd) {
            (Ok(g), Ok(r), Ok(initrd)) => {
                let console = dir.join(format!("linux-function-{}-console.log", o.name));
                let qemu = &qemu;
                series.push(Series::new(label, what, plan.linux_runs, 0, move |_| {
                    let boot = procs::LinuxBoot {
                        vmlinux: &g.vmlinux,
                        initrd,
                        cmdline: linux::CMDLINE,
                        console: &console,
                        marker: linux::NET_MARKER,
                    };
                    let spawn = || qemu.spawn_linux_function(&boot);
                    let describe = || format!("; console tail:\n{}", procs::console_tail(&console));
                    r.one_event(spawn, Duration::from_secs(120), describe)
                        .map(|d| d.as_secs_f64() * 1000.0)
                }));
            }
            (_, _, Err(e)) => series.push(Series::unavailable(
                label,
                what,
                Outcome::Skipped(e.clone()),
            )),
            _ => unreachable!("the initramfs is Ok only when the guest and the API are"),
        }
    }

    // One unmeasured run of each warms caches; then the rounds.
    let rounds = series.iter().map(|s| s.runs).max().unwrap_or(0);
    eprintln!("xtask: bench: latency rows, interleaved ({rounds} rounds)");
    for s in series.iter_mut() {
        s.step(true);
    }
    for round in 0..rounds {
        for s in series.iter_mut().filter(|s| round < s.runs) {
            s.step(false);
        }
    }
    phase("latency rows");

    eprintln!("xtask: bench: throughput");
    let throughput = CONCURRENCY
        .iter()
        .map(|&n| Throughput {
            clients: n,
            api: match &server {
                Ok(s) => rate(n, plan.window, || s.invoke(None, false).map(|(d, _)| d)),
                Err(_) => Err("mayfly serve did not start".into()),
            },
            floor: rate(n, plan.window, || {
                qemu.boot_floor(&floor, None).map(|r| r.wall)
            }),
        })
        .collect::<Vec<_>>();
    phase("throughput");

    eprintln!("xtask: bench: peak memory (through a wrapper)");
    match procs::RssProbe::new(&dir) {
        Ok(probe) => series.iter_mut().for_each(|s| s.probe_rss(&probe)),
        Err(e) => notes.push(format!("peak RSS not measured: {e:#}")),
    }
    let mut rows: Vec<Row> = series.into_iter().map(Series::row).collect();
    phase("peak memory");

    eprintln!("xtask: bench: warm invocations");
    let warm_what = "API sync Invoke of echo version 1 with provisioned concurrency 2 (warm)";
    let warm = match &server {
        Ok(s) => warm_row(s, plan),
        Err(e) => Outcome::Failed(format!("mayfly serve: {e:#}")),
    };
    let at = rows
        .iter()
        .rposition(|r| r.label == COLD || LINUX_FUNCTIONS.iter().any(|f| f.1 == r.label))
        .map_or(rows.len(), |i| i + 1);
    rows.insert(
        at,
        Row {
            label: WARM,
            what: warm_what,
            outcome: warm,
        },
    );
    phase("warm invocations");

    eprintln!("xtask: bench: {}", urls::TITLE);
    match (&server, built.iter().find(|i| i.name == "echo")) {
        (Ok(s), Some(image)) => match urls::measure(s, &image.zip, plan.runs) {
            Ok(m) => notes.push(format!(
                "{}: p50 {} through the URL against {} for Invoke ({:.2}×; n={} each, by turns; `--only urls` for the table).",
                urls::TITLE,
                stats::fmt_ms(m.url.p50),
                stats::fmt_ms(m.invoke.p50),
                m.url.p50 / m.invoke.p50,
                m.url.n
            )),
            Err(e) => notes.push(format!("{} not measured: {e:#}", urls::TITLE)),
        },
        _ => notes.push(format!("{} not measured: no server or no echo", urls::TITLE)),
    }
    phase("function URLs");

    // CPU-bound, on every core: alone, after the rest.
    eprintln!("xtask: bench: {}", wordcount::TITLE);
    let word_count = match (&server, built.iter().find(|i| i.name == "rust-wordcount")) {
        (Ok(s), Some(image)) => Some(wordcount::measure(s, &image.zip)),
        (Err(e), _) => {
            notes.push(format!(
                "{} not measured: mayfly serve: {e:#}",
                wordcount::TITLE
            ));
            None
        }
        (_, None) => {
            notes.push(format!(
                "{} not measured: rust-wordcount was not built",
                wordcount::TITLE
            ));
            None
        }
    };
    drop(server);
    phase("word count");

    let rss_of = |label: &str| {
        rows.iter()
            .find(|r| r.label == label)
            .and_then(|r| match &r.outcome {
                Outcome::Measured { rss_kib, .. } => *rss_kib,
                _ => None,
            })
    };
    let memory = findings::memory_lines(&machine, rss_of(RUN), rss_of(FLOOR));
    notes.push("Host peak RSS: `ru_maxrss` (from `wait4`) of the isolating process, in separate runs through a tiny static wrapper (a child reaped by the benchmark itself would carry the benchmark's own high-water mark): the program itself for the static row, `bwrap` and its child for the sandbox, QEMU for the VM rows; for `mayfly run` the QEMU it starts, with the wrapper given as MAYFLY_QEMU.".into());
    notes.push("Timing: wall clock from spawn (or request) to reaped exit (or response) in this process; API requests use a fresh loopback TCP connection each.".into());

    let sizes = example_sizes(&built);

    let mut report = Report {
        machine,
        mode: format!(
            "{} ({} runs per latency row, {} for Linux, {} warm; {:.1} s throughput windows)",
            if std::ptr::eq(plan, &QUICK) {
                "--quick"
            } else {
                "full"
            },
            plan.runs,
            plan.linux_runs,
            plan.warm_runs,
            plan.window.as_secs_f64()
        ),
        rows,
        throughput,
        memory,
        word_count,
        goals: Vec::new(),
        sizes,
        notes,
    };
    report.goals = findings::goals(&report);
    std::fs::write(dir.join("report.md"), report.markdown())?;
    std::fs::write(dir.join("report.svg"), svg::render(&report))?;

    println!();
    print!("{}", report.table());
    println!();
    print!("{}", report.throughput_table());
    println!();
    for line in &report.memory {
        println!("- {line}");
    }
    if let Some(wc) = &report.word_count {
        println!();
        println!("{}", wordcount::TITLE);
        println!();
        print!("{}", wc.markdown());
    }
    println!();
    print!("{}", report.goals_list());
    println!();
    for line in &report.sizes {
        println!("- {line}");
    }
    for row in &report.rows {
        match &row.outcome {
            Outcome::Skipped(why) => println!("note: {} skipped: {why}", row.label),
            Outcome::Failed(why) => println!("note: {} failed: {why}", row.label),
            Outcome::Measured {
                remark: Some(r), ..
            } => println!("note: {}: {r}", row.label),
            Outcome::Measured { .. } => {}
        }
    }
    println!();
    println!(
        "wrote {} and {} in {:.1} s",
        dir.join("report.md").display(),
        dir.join("report.svg").display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `--only urls`: function URLs against Invoke alone, on its own server;
/// printed, and written to `target/bench/urls.md`.
fn run_urls(plan: &Plan) -> Result<()> {
    run_alone("echo", urls::TITLE, "urls.md", |server, zip| {
        Ok(urls::measure(server, zip, plan.runs)?.markdown())
    })
}

/// `--only sources`: the event sources' latency alone, on its own server;
/// printed, and written to `target/bench/sources.md`.
fn run_sources(plan: &Plan) -> Result<()> {
    run_alone("recorder", sources::TITLE, "sources.md", |server, zip| {
        Ok(sources::measure(server, zip, plan.runs)?.markdown())
    })
}

/// One section alone on its own server with the image `image`: its
/// Markdown under `title`, printed and written to `target/bench/FILE`.
fn run_alone(
    image: &str,
    title: &str,
    file: &str,
    measure: impl FnOnce(&api::Server, &Path) -> Result<String>,
) -> Result<()> {
    bootstrap::ensure_host_tools()?;
    let built = images::build()?;
    let mayfly = util::build_mayfly()?;
    let zip = &built
        .iter()
        .find(|i| i.name == image)
        .with_context(|| format!("{image} was not built"))?
        .zip;
    let dir = util::root().join("target").join("bench");
    std::fs::create_dir_all(&dir)?;
    let server = api::Server::start(&mayfly, &dir)?;
    eprintln!("xtask: bench: {title}");
    let measured = measure(&server, zip)?;
    drop(server);
    let text = format!("## {title}\n\n{measured}");
    println!();
    print!("{text}");
    let path = dir.join(file);
    std::fs::write(&path, &text)?;
    println!("\nwrote {}", path.display());
    Ok(())
}

/// `--only wordcount`: the CPU-bound section alone, on its own server;
/// printed, and written to `target/bench/wordcount.md`.
fn run_wordcount() -> Result<()> {
    bootstrap::ensure_host_tools()?;
    let built = images::build()?;
    let mayfly = util::build_mayfly()?;
    let image = built
        .iter()
        .find(|i| i.name == "rust-wordcount")
        .context("rust-wordcount was not built")?;
    let dir = util::root().join("target").join("bench");
    std::fs::create_dir_all(&dir)?;
    let choice = accel::detect(AccelRequest::Auto).context("choosing the accelerator")?;
    println!("accelerator: {} ({})", choice.accel, choice.reason);
    println!(
        "host CPUs: {}; vCPUs at {} and {} MB: {} and {}",
        mayfly_vm::qemu::host_cpus(),
        wordcount::SIZES[0],
        wordcount::SIZES[1],
        mayfly_vm::qemu::vcpus_for(wordcount::SIZES[0], mayfly_vm::qemu::host_cpus()),
        mayfly_vm::qemu::vcpus_for(wordcount::SIZES[1], mayfly_vm::qemu::host_cpus()),
    );
    let server = api::Server::start(&mayfly, &dir)?;
    eprintln!("xtask: bench: {}", wordcount::TITLE);
    let wc = wordcount::measure(&server, &image.zip);
    drop(server);
    let text = format!("## {}\n\n{}", wordcount::TITLE, wc.markdown());
    println!();
    print!("{text}");
    let path = dir.join("wordcount.md");
    std::fs::write(&path, &text)?;
    println!("\nwrote {}", path.display());
    Ok(())
}

/// The byte sizes of the echo examples (package and program) and of the
/// kernel Linux functions boot, as sentences.
fn example_sizes(built: &[images::Image]) -> Vec<String> {
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).ok();
    let bytes = |n: Option<u64>| n.map_or("?".into(), |n| format!("{n} bytes"));
    let mut lines = Vec::new();
    for (name, kind) in [
        ("echo", "native Mayfly image (bootable ELF)"),
        ("rust-echo", "static Linux program, stripped"),
        ("rust-echo-mt", "static Linux program, stripped"),
        (
            "go-echo",
            "static Linux program (Go, CGO_ENABLED=0), stripped",
        ),
        ("c-echo", "static Linux program, stripped"),
    ] {
        match built.iter().find(|i| i.name == name) {
            Some(i) => lines.push(format!(
                "{name}: zip {}, `bootstrap` {} ({kind}).",
                bytes(size(&i.zip)),
                bytes(size(&i.elf))
            )),
            None => lines.push(format!("{name}: not built.")),
        }
    }
    lines.push(format!(
        "linux.elf (the kernel every Linux function boots, shared, not in the zips): {}.",
        bytes(size(&images::linux_kernel()))
    ));
    lines
}

/// `Ok` when bubblewrap runs the static program here; else why not.
/// Installs Debian's `bubblewrap` when it is missing and we are root.
fn bwrap_usable(prog: &Path) -> std::result::Result<(), String> {
    let present = || {
        Command::new("bwrap")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !present() {
        if !crate::sys::is_root() {
            return Err(
                "bwrap is not installed and we are not root: apt-get install -y bubblewrap".into(),
            );
        }
        eprintln!("xtask: bench: installing bubblewrap with apt-get");
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let installed = apt(&["install", "-y", "-q", "bubblewrap"])
            || (apt(&["update", "-q"]) && apt(&["install", "-y", "-q", "bubblewrap"]));
        if !installed {
            return Err("apt-get install -y bubblewrap failed".into());
        }
    }
    match procs::bwrap_command(prog, None).output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "bwrap cannot run here (unprivileged user namespaces off?): {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run bwrap: {e}")),
    }
}

/// Wall ms of `mayfly run echo.elf --event EVENT`, checking the echo.
/// With `probe`, its QEMU runs through the RSS wrapper.
fn run_cli(mayfly: &Path, echo: &Path, probe: Option<(&RssProbe, &Path)>) -> Result<f64> {
    let mut cmd = Command::new(mayfly);
    cmd.arg("run")
        .arg(echo)
        .arg("--event")
        .arg(std::str::from_utf8(api::EVENT)?);
    if let Some((probe, qemu)) = probe {
        probe.wrap_qemu(&mut cmd, qemu)?;
        // The wrapper is not in the jail's root: QEMU's RSS is measured
        // unjailed (the jail changes nothing in QEMU's own memory).
        cmd.args(["--jail", "off"]);
    }
    let started = Instant::now();
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", mayfly.display()))?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() || out.stdout.trim_ascii() != api::EVENT {
        bail!(
            "`mayfly run` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(ms)
}

/// `clients` threads each doing `op` back to back for `window`: the
/// completions per second over the window, and their latencies.
fn rate(
    clients: usize,
    window: Duration,
    op: impl Fn() -> Result<Duration> + Sync,
) -> std::result::Result<Rate, String> {
    let started = Instant::now();
    let results: Vec<(Vec<f64>, Option<String>, Instant)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut ms = Vec::new();
                    let mut error = None;
                    let mut last = Instant::now();
                    while started.elapsed() < window {
                        match op() {
                            Ok(d) => {
                                ms.push(d.as_secs_f64() * 1000.0);
                                last = Instant::now();
                            }
                            Err(e) => {
                                error = Some(format!("{e:#}"));
                                break;
                            }
                        }
                    }
                    (ms, error, last)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    if let Some(e) = results.iter().find_map(|r| r.1.clone()) {
        eprintln!("xtask: bench: throughput at {clients} failed: {e}");
        return Err(e);
    }
    let all: Vec<f64> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let end = results.iter().map(|r| r.2).max().unwrap_or(started);
    let secs = end.duration_since(started).as_secs_f64();
    let ms = Summary::of(&all).ok_or("nothing completed")?;
    Ok(Rate {
        per_s: all.len() as f64 / secs,
        completed: all.len(),
        ms,
    })
}

/// The provisioned-concurrency row: publish, ask for 2 warm VMs, wait for
/// READY, then invoke with a pause between invokes for the pool to refill,
/// telling warm from cold by the REPORT line of the log tail.
fn warm_row(s: &api::Server, plan: &Plan) -> Outcome {
    let go = || -> Result<Outcome> {
        let version = s.publish()?;
        if let Err(why) = s.put_provisioned(&version, 2)? {
            return Ok(Outcome::Skipped(format!(
                "provisioned concurrency is not available: {why}"
            )));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match s.provisioned_status(&version)?.as_str() {
                "READY" => break,
                "FAILED" => bail!("provisioned concurrency FAILED"),
                _ if Instant::now() > deadline => {
                    bail!("provisioned concurrency not READY within 60 s")
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let (mut ms, mut warm, mut unknown) = (Vec::new(), 0, 0);
        for _ in 0..plan.warm_runs {
            std::thread::sleep(plan.warm_pause);
            let (d, log) = s.invoke(Some(&version), true)?;
            ms.push(d.as_secs_f64() * 1000.0);
            match log.as_deref().and_then(api::report_is_warm) {
                Some(true) => warm += 1,
                Some(false) => {}
                None => unknown += 1,
            }
        }
        let mut remark = format!("{warm}/{} warm by their REPORT line", ms.len());
        if unknown > 0 {
            remark.push_str(&format!(", {unknown} without a REPORT line"));
        }
        Ok(Outcome::Measured {
            ms: Summary::of(&ms).context("no runs")?,
            rss_kib: None,
            remark: Some(remark),
        })
    };
    go().unwrap_or_else(|e| {
        eprintln!("xtask: bench: warm row failed: {e:#}");
        Outcome::Failed(format!("{e:#}"))
    })
}
