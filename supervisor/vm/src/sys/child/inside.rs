//! The stub's side: runs in the cloned child only, from `clone` to
//! `execve`, with raw system calls on memory the parent prepared (see the
//! parent module's comment). Nothing here allocates.

use std::ffi::CStr;
use std::os::fd::RawFd;

use super::{tag, EarlySpec, FDS_MAX, MAX_ARGS, READY, STEPS};

type Owner = Option<(libc::uid_t, libc::gid_t)>;

fn step(name: &str) -> u32 {
    STEPS.iter().position(|s| *s == name).expect("a known step") as u32
}

/// Sends (step, errno) on `fd` and exits.
fn fail(fd: RawFd, step: u32) -> ! {
    // SAFETY: errno is thread-local and this is the only thread; write and
    // _exit are async-signal-safe.
    unsafe {
        let errno = *libc::__errno_location();
        let mut message = [0u8; 8];
        message[..4].copy_from_slice(&step.to_ne_bytes());
        message[4..].copy_from_slice(&errno.to_ne_bytes());
        libc::write(fd, message.as_ptr().cast(), message.len());
        libc::_exit(127)
    }
}

/// Has the kernel SIGKILL this process when the supervisor (whose pidfd
/// is `parent`) dies, and exits (reporting on `report`) if it already
/// has: the signal only covers deaths after the `prctl`.
fn die_with_parent(report: RawFd, parent: RawFd) {
    // SAFETY: prctl and poll take a constant and a local pollfd; errno is
    // thread-local and this is the only thread.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            fail(report, step("set its parent-death signal"));
        }
        let mut poll = libc::pollfd {
            fd: parent,
            events: libc::POLLIN,
            revents: 0,
        };
        if libc::poll(&mut poll, 1, 0) != 0 {
            *libc::__errno_location() = libc::ESRCH;
            fail(report, step("notice that the supervisor died"));
        }
    }
}

/// Writes `bytes` into the existing file `path`.
fn write_file(path: &CStr, bytes: &[u8]) -> bool {
    // SAFETY: path is NUL-terminated; bytes is valid for its length.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let ok = libc::write(fd, bytes.as_ptr().cast(), bytes.len()) == bytes.len() as isize;
        libc::close(fd);
        ok
    }
}

/// A new file at `path`, 0400, owned by `owner`: its descriptor, or -1.
fn create_private(path: *const libc::c_char, owner: Owner) -> libc::c_int {
    // SAFETY: path points at a NUL-terminated string of the message.
    unsafe {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC;
        let fd = libc::open(path, flags, 0o400);
        if fd >= 0 {
            if let Some((uid, gid)) = owner {
                if libc::fchown(fd, uid, gid) != 0 {
                    libc::close(fd);
                    return -1;
                }
            }
        }
        fd
    }
}

/// The message's fields, read in order.
struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    fn u32(&mut self) -> u32 {
        let (head, rest) = self.bytes.split_at(4);
        self.bytes = rest;
        u32::from_ne_bytes(head.try_into().expect("4 bytes"))
    }

    fn u64(&mut self) -> u64 {
        let (head, rest) = self.bytes.split_at(8);
        self.bytes = rest;
        u64::from_ne_bytes(head.try_into().expect("8 bytes"))
    }

    /// A NUL-terminated string, as a C pointer into the message.
    fn c_str(&mut self) -> *const libc::c_char {
        let end = self
            .bytes
            .iter()
            .position(|&b| b == 0)
            .expect("encoded with a NUL");
        let ptr = self.bytes.as_ptr().cast();
        self.bytes = &self.bytes[end + 1..];
        ptr
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }
}

/// Receives the message and its descriptors: (length, descriptors, count).
fn receive(control: RawFd, buffer: &mut [u8]) -> (usize, [RawFd; FDS_MAX], usize) {
    const SPACE: usize = 64;
    #[repr(C, align(8))]
    struct Control([u8; SPACE]);
    let mut cmsg_buf = Control([0; SPACE]);
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    let mut fds = [-1; FDS_MAX];
    let mut count = 0;
    // SAFETY: msghdr is zeroed then pointed at the live iovec and control
    // buffer; CMSG_* walk only within that buffer.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cmsg_buf.0.as_mut_ptr().cast();
        msg.msg_controllen = SPACE as _;
        let n = libc::recvmsg(control, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n <= 0 {
            // The host gave up on this stub (or died): nothing to report.
            libc::_exit(0);
        }
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(cmsg).cast::<RawFd>();
                let len = (*cmsg).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for (i, slot) in fds.iter_mut().enumerate().take(len / 4) {
                    *slot = data.add(i).read_unaligned();
                    count = i + 1;
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
        (n as usize, fds, count)
    }
}

/// The stub, from `clone` to `execve`. Never returns.
pub(super) fn stub_main(
    early: &EarlySpec,
    control: RawFd,
    parent_pidfd: RawFd,
    buffer: &mut [u8],
) -> ! {
    // SAFETY: this is the cloned child: one thread, its own copy of
    // memory; every call is a raw system call on memory the parent
    // prepared or on this function's locals.
    unsafe {
        // A copy of every descriptor the host had open came along: a
        // stub that waits with a copy of another VM's console pipe or of
        // another spawn's report pipe would keep those from ever ending.
        // Only its socket and the supervisor's pidfd stay (and stdio,
        // replaced when it is used).
        let (low, high) = (
            control.min(parent_pidfd) as libc::c_uint,
            control.max(parent_pidfd) as libc::c_uint,
        );
        for (first, last) in [
            (3, low.wrapping_sub(1)),
            (low + 1, high.wrapping_sub(1)),
            (high + 1, libc::c_uint::MAX),
        ] {
            if first <= last {
                libc::syscall(libc::SYS_close_range, first, last, 0);
            }
        }
        if let Some((uid_map, gid_map)) = &early.user_map {
            let ok = write_file(c"/proc/self/setgroups", b"deny")
                && write_file(c"/proc/self/uid_map", uid_map.as_bytes())
                && write_file(c"/proc/self/gid_map", gid_map.as_bytes());
            if !ok {
                fail(control, step("write its user namespace's maps"));
            }
        }
        die_with_parent(control, parent_pidfd);
        for procs in &early.cgroup_procs {
            if !write_file(procs, b"0") {
                fail(control, step("join its cgroup"));
            }
        }
        let ready = [READY.to_ne_bytes(), 0u32.to_ne_bytes()];
        if libc::write(control, ready.as_ptr().cast(), 8) != 8 {
            libc::_exit(0);
        }
        let (len, received, count) = receive(control, buffer);
        if count == 0 {
            *libc::__errno_location() = libc::EBADF;
            fail(control, step("receive its VM"));
        }
        // Above every number assigned below, so that no dup2 overwrites a
        // descriptor still to be moved.
        let mut fds = [-1; FDS_MAX];
        for (slot, &fd) in fds.iter_mut().zip(&received[..count]) {
            *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100);
            libc::close(fd);
        }
        let report = fds[0];
        // Out of the way of the dup2s to 1, 2, 3...: `late` polls it again.
        let parent = libc::fcntl(parent_pidfd, libc::F_DUPFD_CLOEXEC, 100);
        libc::close(parent_pidfd);
        late(&buffer[..len], report, &fds[1..count], parent)
    }
}

/// Builds the root, drops privileges and executes the program, as the
/// message says; `fds` become descriptors 1, 2, 3, ...; `parent` is the
/// supervisor's pidfd.
fn late(message: &[u8], report: RawFd, fds: &[RawFd], parent: RawFd) -> ! {
    let mut argv: [*const libc::c_char; MAX_ARGS + 1] = [std::ptr::null(); MAX_ARGS + 1];
    let mut argc = 0;
    let mut program: *const libc::c_char = std::ptr::null();
    let mut owner: Owner = None;
    let mut group: Option<libc::gid_t> = None;
    let mut no_new_privs = false;
    let mut root_dir: *const libc::c_char = std::ptr::null();
    let none = std::ptr::null();
    // SAFETY: as in `stub_main`; every pointer is into `message`, whose
    // strings the parent NUL-terminated.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if null < 0 {
            fail(report, step("open /dev/null"));
        }
        if libc::dup2(null, 0) < 0 {
            fail(report, step("set up its descriptors"));
        }
        for (i, &fd) in fds.iter().enumerate() {
            if libc::dup2(fd, i as libc::c_int + 1) < 0 {
                fail(report, step("set up its descriptors"));
            }
        }
        let mut rest = message;
        while rest.len() >= 5 {
            let kind = rest[0];
            let len = u32::from_ne_bytes(rest[1..5].try_into().expect("4 bytes")) as usize;
            let mut f = Fields {
                bytes: &rest[5..5 + len],
            };
            rest = &rest[5 + len..];
            let ok = match kind {
                tag::ID => {
                    let (uid, gid, has, g) = (f.u32(), f.u32(), f.u32(), f.u32());
                    owner = Some((uid, gid));
                    group = (has != 0).then_some(g);
                    true
                }
                tag::ROOT => {
                    root_dir = f.c_str();
                    let options = f.c_str();
                    if libc::mount(
                        none,
                        c"/".as_ptr(),
                        none,
                        libc::MS_REC | libc::MS_PRIVATE,
                        none.cast(),
                    ) != 0
                    {
                        fail(report, step("make its mounts private"));
                    }
                    let flags = libc::MS_NOSUID | libc::MS_NODEV;
                    if libc::mount(
                        c"tmpfs".as_ptr(),
                        root_dir,
                        c"tmpfs".as_ptr(),
                        flags,
                        options.cast(),
                    ) != 0
                    {
                        fail(report, step("mount its root tmpfs"));
                    }
                    true
                }
                tag::DIR => libc::mkdir(f.c_str(), 0o755) == 0,
                tag::FILE => {
                    let fd = libc::open(
                        f.c_str(),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC,
                        0o444,
                    );
                    fd >= 0 && libc::close(fd) == 0
                }
                tag::BIND => {
                    let flags = f.u64() as libc::c_ulong;
                    let (src, dst) = (f.c_str(), f.c_str());
                    let remount = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags;
                    libc::mount(src, dst, none, libc::MS_BIND, none.cast()) == 0
                        && libc::mount(none, dst, none, remount, none.cast()) == 0
                }
                tag::COPY => {
                    let (src, dst) = (f.c_str(), f.c_str());
                    let from = libc::open(src, libc::O_RDONLY | libc::O_CLOEXEC);
                    let to = if from >= 0 {
                        create_private(dst, owner)
                    } else {
                        -1
                    };
                    let mut ok = to >= 0;
                    while ok {
                        let n = libc::sendfile(to, from, std::ptr::null_mut(), 1 << 30);
                        if n <= 0 {
                            ok = n == 0;
                            break;
                        }
                    }
                    libc::close(from);
                    libc::close(to);
                    ok
                }
                tag::WRITE => {
                    let dst = f.c_str();
                    let bytes = f.rest();
                    let fd = create_private(dst, owner);
                    let ok = fd >= 0
                        && libc::write(fd, bytes.as_ptr().cast(), bytes.len())
                            == bytes.len() as isize;
                    libc::close(fd);
                    ok
                }
                tag::PIVOT => {
                    // pivot_root(".", ".") stacks the old root under the
                    // new one, where the detaching unmount removes it.
                    if libc::chdir(root_dir) != 0
                        || libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) != 0
                        || libc::umount2(c".".as_ptr(), libc::MNT_DETACH) != 0
                        || libc::chdir(c"/".as_ptr()) != 0
                    {
                        fail(report, step("pivot into its root"));
                    }
                    let flags = libc::MS_BIND
                        | libc::MS_REMOUNT
                        | libc::MS_RDONLY
                        | libc::MS_NOSUID
                        | libc::MS_NODEV;
                    if libc::mount(none, c"/".as_ptr(), none, flags, none.cast()) != 0 {
                        fail(report, step("make its root read-only"));
                    }
                    true
                }
                tag::RLIMIT => {
                    let resource = f.u32() as libc::c_int;
                    let limit = f.u64();
                    let value = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(resource as _, &value) != 0 {
                        fail(report, step("set its resource limits"));
                    }
                    true
                }
                tag::NNP => {
                    no_new_privs = true;
                    true
                }
                tag::PROGRAM => {
                    program = f.c_str();
                    true
                }
                tag::ARG => {
                    if argc < MAX_ARGS {
                        argv[argc] = f.c_str();
                        argc += 1;
                    }
                    true
                }
                _ => true,
            };
            if !ok {
                fail(report, step("populate its root"));
            }
        }
        if let Some((uid, gid)) = owner {
            let groups: [libc::gid_t; 1] = [group.unwrap_or(gid)];
            let count = usize::from(group.is_some());
            if libc::syscall(libc::SYS_setgroups, count, groups.as_ptr()) != 0
                || libc::syscall(libc::SYS_setresgid, gid, gid, gid) != 0
                || libc::syscall(libc::SYS_setresuid, uid, uid, uid) != 0
            {
                fail(report, step("change its uid and gid"));
            }
            // A change of uid or gid clears the parent-death signal (and
            // QEMU would outlive a killed supervisor): set it again, then
            // make sure the supervisor did not die in between.
            die_with_parent(report, parent);
        }
        if no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail(report, step("set no_new_privs"));
        }
        // Everything above the program's descriptors closes at exec; the
        // report pipe stays usable until then.
        let first = fds.len() as libc::c_uint + 1;
        if libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            fail(report, step("close inherited descriptors"));
        }
        let envp: [*const libc::c_char; 1] = [std::ptr::null()];
        libc::execve(program, argv.as_ptr(), envp.as_ptr());
        fail(report, step("execute QEMU"))
    }
}
