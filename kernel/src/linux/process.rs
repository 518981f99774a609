//! The one process: its state, its start (package, loader, stack, ring 3)
//! and its end (an exit status or a signal, stated on the console before
//! the VM powers off).

use alloc::boxed::Box;
use alloc::collections::BTreeSet;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;

use mayfly_linux::fd::FdTable;
use mayfly_linux::vfs::{OpenFile, Vfs};
use mayfly_linux::vma::{AddressSpace, Backing, PIE_BASE, STACK_TOP};
use mayfly_linux::{elf, stack};
use mayfly_proto::boot::{BootConfig, ENV_FW_CFG_NAME};
use mayfly_proto::exit::{self, ProcessEnd};
use mayfly_proto::pack::{EntryKind, Pack};
use virtio_drivers::device::console::VirtIOConsole;

use super::{entry, fatal, net, paging};
use crate::boot::BootInfo;
use crate::global::Global;
use crate::{arch, clock, console, heap, virtio};

/// The byte source of every file-backed region: the whole pack (offsets
/// in regions are offsets in the pack).
pub const PACK_SOURCE: u32 = 0;

/// An open file, as descriptors share it (dup shares the offset).
pub type FileRef = Rc<RefCell<File>>;

/// What a descriptor refers to.
pub enum File {
    /// A file or directory of the file system, or a device.
    Node(OpenFile<'static>),
    /// Standard input: always at its end.
    Stdin,
    /// Standard output or error: the function's log.
    Console,
    /// A TCP socket.
    Socket(net::Socket),
    /// A UDP socket.
    Datagram(super::datagram::Datagram),
    /// An epoll instance.
    Epoll(net::Epoll),
    /// An eventfd counter.
    EventFd(net::EventFd),
    /// One end of a pipe.
    Pipe(super::pipe::End),
}

/// The process's state.
pub struct Process {
    /// The address space's regions.
    pub space: AddressSpace,
    /// The package.
    pub pack: Pack<'static>,
    /// The file system.
    pub vfs: Vfs<'static>,
    /// Open files.
    pub fds: FdTable<FileRef>,
    /// The working directory, absolute.
    pub cwd: Vec<u8>,
    /// The boot configuration.
    pub config: &'static BootConfig,
    /// Syscalls already named as unsupported in the log.
    pub reported: BTreeSet<u64>,
    /// The random generator.
    pub random: super::syscall::random::Generator,
    /// The umask.
    pub umask: u32,
    /// The network.
    pub net: net::Network,
    /// Each signal's action (signal N at N - 1).
    pub actions: [super::signal::Action; 64],
}

static PROCESS: Global<Option<Process>> = Global::new(None);
/// The VM's memory, for the out-of-memory message (which may come while
/// the process is borrowed).
static MEMORY_MB: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// Runs `f` on the process; `None` before it exists or when re-entered.
pub fn with<R>(f: impl FnOnce(&mut Process) -> R) -> Option<R> {
    PROCESS.with(|p| p.as_mut().map(f)).flatten()
}

/// The pack's bytes: the initrd, read through the alias.
fn initrd_pack(boot: &BootInfo) -> Pack<'static> {
    let Some((start, end)) = boot.initrd() else {
        fatal(format_args!(
            "no package: the Linux kernel needs its package as the initrd"
        ))
    };
    // SAFETY: QEMU loaded the initrd there; `init_heap` kept it out of the
    // heap and frames, so nothing writes it, and the alias maps all RAM.
    let bytes: &'static [u8] = unsafe {
        core::slice::from_raw_parts(
            heap::phys_to_virt(start) as *const u8,
            (end - start) as usize,
        )
    };
    match Pack::parse(bytes) {
        Ok(pack) => pack,
        Err(e) => fatal(format_args!("the package (initrd) is unreadable: {e}")),
    }
}

fn boot_config(boot: &BootInfo) -> &'static BootConfig {
    let env = crate::fwcfg::read_file(ENV_FW_CFG_NAME).unwrap_or_default();
    let Ok(env) = core::str::from_utf8(&env) else {
        fatal(format_args!("the environment file is not UTF-8"))
    };
    match BootConfig::decode_with_env(boot.cmdline(), env) {
        Ok(config) => Box::leak(Box::new(config)),
        Err(e) => fatal(format_args!("{e}")),
    }
}

/// Boots the process: devices, package, file system, network, address
/// space, the program and its stack; then enters it.
pub fn start(boot: &'static BootInfo) -> ! {
    let devices = virtio::scan();
    if let Some(transport) = devices.console {
        match VirtIOConsole::new(transport) {
            Ok(device) => console::attach(device),
            Err(e) => console::kernel_line(format_args!("virtio console unusable: {e:?}")),
        }
    }
    let config = boot_config(boot);
    MEMORY_MB.store(config.memory_mb, core::sync::atomic::Ordering::Relaxed);
    let Some(program) = config.program.as_deref() else {
        fatal(format_args!("no program named in the boot configuration"))
    };
    clock::finish_calibration();
    super::timer::start_calibration();
    super::syscall::time::set_wall_clock(config.host_clock_ms);
    let pack = initrd_pack(boot);
    // /tmp lives in the VM's memory: it may take all of it but a quarter
    // (at least 16 MB), which stays for the program, so that filling /tmp
    // is ENOSPC, as on Lambda, not the end of the program.
    let memory = u64::from(config.memory_mb) << 20;
    let tmp_limit = (u64::from(config.tmp_mb) << 20).min(memory - (memory / 4).max(16 << 20));
    let vfs = Vfs::new(pack, tmp_limit);
    let Some(nic) = devices.net else {
        fatal(format_args!("no virtio-net device"))
    };
    let net = net::Network::new(nic, config);
    if paging::init().is_err() {
        out_of_memory();
    }
    entry::init();
    let random = super::syscall::random::Generator::new(config.seed);
    let mut process = Process {
        space: AddressSpace::new(),
        pack,
        vfs,
        fds: FdTable::new(),
        cwd: b"/var/task".to_vec(),
        config,
        reported: BTreeSet::new(),
        random,
        umask: 0o022,
        net,
        actions: [super::signal::Action::default(); 64],
    };
    let stdio = [File::Stdin, File::Console, File::Console];
    for file in stdio {
        let _ = process.fds.insert(Rc::new(RefCell::new(file)), false);
    }
    let (entry_point, sp) = match load(&mut process, program) {
        Ok(start) => start,
        Err(message) => {
            console::flush();
            console::kernel_line(format_args!("cannot run {program}: {message}"));
            console::kernel_line(format_args!("{}", ProcessEnd::Exited(126)));
            arch::power_off(exit::PROCESS_EXITED)
        }
    };
    PROCESS.with(|slot| *slot = Some(process));
    super::sched::init();
    super::timer::init();
    // The boot CPU holds the kernel lock until it enters the program; the
    // other CPUs wait for it in their idle loops.
    super::smp::lock();
    super::smp::start_others();
    entry::enter_user(entry_point, sp)
}

/// Loads `program` from the file system: its segments as file-backed
/// regions (paged in from the pack on first touch), the heap's start, the
/// stack with argv, envp and auxv. Returns the entry point and the stack
/// pointer.
fn load(p: &mut Process, program: &str) -> Result<(u64, u64), String> {
    let path = program.trim_start_matches('/');
    let entry = p
        .pack
        .find(path)
        .ok_or_else(|| String::from("no such file in the package"))?;
    if entry.kind != EntryKind::File {
        return Err(String::from("not a regular file"));
    }
    let plan = elf::plan(entry.data, PIE_BASE).map_err(|e| alloc::format!("{e}"))?;
    for segment in &plan.segments {
        let end = segment
            .vaddr
            .checked_add(segment.mem_size)
            .ok_or_else(|| String::from("a segment wraps around"))?;
        let backing = Backing::File {
            source: PACK_SOURCE,
            start: segment.vaddr,
            offset: entry.offset + segment.file_offset,
            size: segment.file_size,
        };
        p.space
            .insert_image(segment.vaddr, end, segment.prot, backing)
            .map_err(|e| alloc::format!("segment at {:#x}: {e:?}", segment.vaddr))?;
    }
    p.space.set_brk_start(plan.end);
    p.space
        .insert_stack()
        .map_err(|e| alloc::format!("stack: {e:?}"))?;
    let mut random = [0u8; 16];
    p.random.fill(&mut random);
    let argv: Vec<&[u8]> = if p.config.args.is_empty() {
        alloc::vec![program.as_bytes()]
    } else {
        p.config.args.iter().map(|a| a.as_bytes()).collect()
    };
    let env: Vec<Vec<u8>> = p
        .config
        .env
        .iter()
        .map(|(k, v)| {
            let mut s = Vec::with_capacity(k.len() + v.len() + 1);
            s.extend_from_slice(k.as_bytes());
            s.push(b'=');
            s.extend_from_slice(v.as_bytes());
            s
        })
        .collect();
    let envp: Vec<&[u8]> = env.iter().map(|e| e.as_slice()).collect();
    use mayfly_linux::stack::*;
    let auxv = [
        (AT_PHDR, plan.phdr),
        (AT_PHENT, u64::from(plan.phent)),
        (AT_PHNUM, u64::from(plan.phnum)),
        (AT_PAGESZ, 4096),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, plan.entry),
        (AT_UID, 993),
        (AT_EUID, 993),
        (AT_GID, 990),
        (AT_EGID, 990),
        (AT_SECURE, 0),
        (AT_CLKTCK, 100),
        (AT_HWCAP, u64::from(core::arch::x86_64::__cpuid(1).edx)),
        (AT_MINSIGSTKSZ, 2048),
    ];
    let initial = stack::build(STACK_TOP, &argv, &envp, &auxv, &random, program.as_bytes())
        .map_err(|e| alloc::format!("arguments and environment: {e:?}"))?;
    p.write_user(initial.sp, &initial.bytes)
        .map_err(|e| alloc::format!("stack: {e:?}"))?;
    Ok((plan.entry, initial.sp))
}

/// Ends the VM after the program ended so. Callers that hold the process
/// flush its sockets first (what it wrote must reach the host).
fn end(how: ProcessEnd, code: u8) -> ! {
    console::flush();
    console::kernel_line(format_args!("{how}"));
    arch::power_off(code)
}

/// The program called exit or exit_group.
pub fn exited(status: u8) -> ! {
    end(ProcessEnd::Exited(status), exit::PROCESS_EXITED)
}

/// The program was ended by `signal`.
pub fn killed(signal: u8) -> ! {
    end(ProcessEnd::Killed(signal), exit::PROCESS_KILLED)
}

/// The program touched more memory than the VM has.
pub fn out_of_memory() -> ! {
    console::flush();
    console::kernel_line(format_args!(
        "out of memory: the program touched all {} MB of the VM",
        MEMORY_MB.load(core::sync::atomic::Ordering::Relaxed)
    ));
    arch::power_off(exit::OUT_OF_MEMORY)
}
