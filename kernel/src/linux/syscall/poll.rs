//! Waiting for descriptors: poll, ppoll, pselect6, epoll (level- and
//! edge-triggered) and eventfd, over the readiness of
//! [`crate::linux::net`]'s sockets.

use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;

use mayfly_linux::abi;
use mayfly_linux::errno::{Errno, SysResult};

use super::time::monotonic_ns;
use super::Args;
use crate::linux::net::{events, Epoll, EventFd, Interest};
use crate::linux::process::{File, FileRef, Process};

/// How long to wait: until a monotonic time, or forever.
#[derive(Clone, Copy)]
enum Deadline {
    At(u64),
    Never,
}

impl Deadline {
    fn from_ms(ms: i64) -> Deadline {
        if ms < 0 {
            Deadline::Never
        } else {
            Deadline::At(monotonic_ns() + ms as u64 * 1_000_000)
        }
    }

    fn from_timespec(p: &mut Process, addr: u64) -> SysResult<Deadline> {
        if addr == 0 {
            return Ok(Deadline::Never);
        }
        Ok(Deadline::At(super::time::user_deadline(
            p, addr, false, false,
        )?))
    }

    fn passed(self) -> bool {
        match self {
            Deadline::At(t) => monotonic_ns() >= t,
            Deadline::Never => false,
        }
    }

    /// The same deadline on every attempt of one waiting syscall.
    fn remembered(self) -> Deadline {
        let at = super::deadline(|| match self {
            Deadline::At(t) => t,
            Deadline::Never => u64::MAX,
        });
        if at == u64::MAX {
            Deadline::Never
        } else {
            Deadline::At(at)
        }
    }
}

/// What a descriptor is ready for now (epoll bits).
pub fn readiness(p: &mut Process, file: &FileRef) -> u32 {
    let mut f = file.borrow_mut();
    match &mut *f {
        File::Socket(socket) => p.net.socket_events(socket),
        File::Datagram(socket) => p.net.udp_events(socket),
        File::Pipe(end) => end.events(),
        File::EventFd(e) => {
            let mut ready = 0;
            if e.counter > 0 {
                ready |= events::IN;
            }
            if e.counter < u64::MAX - 1 {
                ready |= events::OUT;
            }
            ready
        }
        File::Epoll(_) => 0,
        File::Stdin => events::IN | events::HUP,
        File::Node(_) | File::Console => events::IN | events::OUT,
    }
}

/// Turns the network and checks `ready`: found, or the deadline passed,
/// or the syscall waits (it is made again after other threads ran).
fn wait_for<T>(
    p: &mut Process,
    deadline: Deadline,
    ready: impl FnOnce(&mut Process) -> SysResult<Option<T>>,
) -> SysResult<Option<T>> {
    let deadline = deadline.remembered();
    p.net.poll();
    if let Some(found) = ready(p)? {
        return Ok(Some(found));
    }
    if deadline.passed() {
        return Ok(None);
    }
    Err(Errno::ERESTARTNOINTR)
}

fn poll_fds(p: &mut Process, addr: u64, count: u64, deadline: Deadline) -> SysResult {
    if count > 1024 {
        return Err(Errno::EINVAL);
    }
    let mut fds = p.read_vec(addr, count as usize * 8)?;
    let found = wait_for(p, deadline, |p| {
        let mut ready = 0u64;
        for entry in fds.chunks_exact_mut(8) {
            let fd = i32::from_le_bytes([entry[0], entry[1], entry[2], entry[3]]);
            let wanted = u16::from_le_bytes([entry[4], entry[5]]) as u32;
            let revents = if fd < 0 {
                0
            } else {
                match p.fds.get(fd) {
                    Ok(file) => {
                        let file = file.clone();
                        readiness(p, &file) & (wanted | events::ERR | events::HUP)
                    }
                    Err(_) => 0x20, // POLLNVAL
                }
            };
            entry[6..8].copy_from_slice(&(revents as u16).to_le_bytes());
            if revents != 0 {
                ready += 1;
            }
        }
        Ok((ready > 0).then_some(ready))
    })?;
    p.write_user(addr, &fds)?;
    Ok(found.unwrap_or(0))
}

/// poll.
pub fn poll(p: &mut Process, a: &Args) -> SysResult {
    poll_fds(p, a[0], a[1], Deadline::from_ms(a[2] as i32 as i64))
}

/// ppoll (the signal mask is ignored: no signal is delivered).
pub fn ppoll(p: &mut Process, a: &Args) -> SysResult {
    let deadline = Deadline::from_timespec(p, a[2])?;
    poll_fds(p, a[0], a[1], deadline)
}

/// pselect6.
pub fn pselect6(p: &mut Process, a: &Args) -> SysResult {
    let nfds = a[0] as usize;
    if nfds > 1024 {
        return Err(Errno::EINVAL);
    }
    let bytes = nfds.div_ceil(64) * 8;
    let read_set = |p: &mut Process, addr: u64| -> SysResult<Option<Vec<u8>>> {
        if addr == 0 {
            Ok(None)
        } else {
            p.read_vec(addr, bytes).map(Some)
        }
    };
    let sets = [read_set(p, a[1])?, read_set(p, a[2])?, read_set(p, a[3])?];
    let deadline = Deadline::from_timespec(p, a[4])?;
    let masks = [events::IN | events::HUP, events::OUT, events::ERR];
    let mut out: [Vec<u8>; 3] = [Vec::new(), Vec::new(), Vec::new()];
    let found = wait_for(p, deadline, |p| {
        let mut count = 0u64;
        for (i, set) in sets.iter().enumerate() {
            out[i] = alloc::vec![0u8; bytes];
            let Some(set) = set else { continue };
            for fd in 0..nfds {
                if set[fd / 8] & (1 << (fd % 8)) == 0 {
                    continue;
                }
                let file = p.fds.get(fd as i32)?.clone();
                if readiness(p, &file) & masks[i] != 0 {
                    out[i][fd / 8] |= 1 << (fd % 8);
                    count += 1;
                }
            }
        }
        Ok((count > 0).then_some(count))
    })?;
    for (i, addr) in [a[1], a[2], a[3]].into_iter().enumerate() {
        if addr != 0 {
            p.write_user(addr, &out[i])?;
        }
    }
    Ok(found.unwrap_or(0))
}

/// epoll_create.
pub fn epoll_create(p: &mut Process, a: &Args) -> SysResult {
    if a[0] as i32 <= 0 {
        return Err(Errno::EINVAL);
    }
    epoll_create1(p, &[0; 6])
}

/// epoll_create1.
pub fn epoll_create1(p: &mut Process, a: &Args) -> SysResult {
    if a[0] as u32 & !abi::O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    let file = Rc::new(RefCell::new(File::Epoll(Epoll::default())));
    Ok(p.fds.insert(file, a[0] as u32 & abi::O_CLOEXEC != 0)? as u64)
}

/// epoll_ctl.
pub fn epoll_ctl(p: &mut Process, a: &Args) -> SysResult {
    const ADD: u64 = 1;
    const DEL: u64 = 2;
    const MOD: u64 = 3;
    let epoll = p.fds.get(a[0] as i32)?.clone();
    let fd = a[2] as i32;
    let target = p.fds.get(fd)?.clone();
    if Rc::ptr_eq(&epoll, &target) {
        return Err(Errno::EINVAL);
    }
    if matches!(&*target.borrow(), File::Node(_)) {
        // Regular files are always ready: Linux refuses them.
        return Err(Errno::EPERM);
    }
    let event = if a[1] == DEL {
        [0u8; 12]
    } else {
        p.read_array::<12>(a[3])?
    };
    let wanted = u32::from_le_bytes([event[0], event[1], event[2], event[3]]);
    let data = u64::from_le_bytes(event[4..12].try_into().unwrap_or([0; 8]));
    let mut e = epoll.borrow_mut();
    let File::Epoll(epoll) = &mut *e else {
        return Err(Errno::EINVAL);
    };
    match a[1] {
        ADD => {
            if epoll.interests.contains_key(&fd) {
                return Err(Errno::EEXIST);
            }
            epoll.interests.insert(
                fd,
                Interest {
                    file: Rc::downgrade(&target),
                    events: wanted,
                    data,
                    reported: 0,
                    wouldblock: 0,
                    disabled: false,
                },
            );
        }
        MOD => {
            let interest = epoll.interests.get_mut(&fd).ok_or(Errno::ENOENT)?;
            interest.events = wanted;
            interest.data = data;
            interest.reported = 0;
            interest.disabled = false;
        }
        DEL => {
            epoll.interests.remove(&fd).ok_or(Errno::ENOENT)?;
        }
        _ => return Err(Errno::EINVAL),
    }
    Ok(0)
}

/// The events ready in `epoll` now, at most `max`, as epoll_event records.
fn collect(p: &mut Process, epoll: &FileRef, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    // The files are checked outside the epoll's borrow: a socket's
    // readiness needs the network, not the epoll.
    let watched: Vec<(i32, Option<FileRef>)> = match &*epoll.borrow() {
        File::Epoll(e) => e
            .interests
            .iter()
            .filter(|(_, i)| !i.disabled)
            .map(|(fd, i)| (*fd, i.file.upgrade()))
            .collect(),
        _ => return out,
    };
    for (fd, file) in watched {
        if out.len() / 12 >= max {
            break;
        }
        let Some(file) = file else {
            if let File::Epoll(e) = &mut *epoll.borrow_mut() {
                e.interests.remove(&fd);
            }
            continue;
        };
        let ready = readiness(p, &file);
        let wouldblock = match &*file.borrow() {
            File::Socket(s) => s.wouldblock,
            File::Datagram(d) => d.wouldblock,
            File::EventFd(e) => e.wouldblock,
            File::Pipe(end) => end.edges(),
            _ => 0,
        };
        let mut e = epoll.borrow_mut();
        let File::Epoll(e) = &mut *e else { break };
        let Some(interest) = e.interests.get_mut(&fd) else {
            continue;
        };
        let mask = interest.events | events::ERR | events::HUP;
        let ready = ready & mask;
        let fire = if interest.events & events::ET != 0 {
            // New bits, or any readiness once the program has been told
            // "not ready" since the last report (it drained the socket or
            // filled its buffer, and now waits for the next edge).
            let fresh = ready & !interest.reported != 0
                || (ready != 0 && wouldblock != interest.wouldblock);
            interest.reported = ready;
            if fresh {
                interest.wouldblock = wouldblock;
            }
            fresh
        } else {
            ready != 0
        };
        if fire {
            if interest.events & events::ONESHOT != 0 {
                interest.disabled = true;
            }
            out.extend_from_slice(&ready.to_le_bytes());
            out.extend_from_slice(&interest.data.to_le_bytes());
        }
    }
    out
}

fn epoll_wait_until(p: &mut Process, a: &Args, deadline: Deadline) -> SysResult {
    let max = a[2] as i32;
    if max <= 0 || max > 65536 {
        return Err(Errno::EINVAL);
    }
    let epoll = p.fds.get(a[0] as i32)?.clone();
    if !matches!(&*epoll.borrow(), File::Epoll(_)) {
        return Err(Errno::EINVAL);
    }
    let found = wait_for(p, deadline, |p| {
        let out = collect(p, &epoll, max as usize);
        Ok((!out.is_empty()).then_some(out))
    })?;
    match found {
        Some(out) => {
            p.write_user(a[1], &out)?;
            Ok((out.len() / 12) as u64)
        }
        None => Ok(0),
    }
}

/// epoll_wait.
pub fn epoll_wait(p: &mut Process, a: &Args) -> SysResult {
    epoll_wait_until(p, a, Deadline::from_ms(a[3] as i32 as i64))
}

/// epoll_pwait (the signal mask is ignored: no signal is delivered).
pub fn epoll_pwait(p: &mut Process, a: &Args) -> SysResult {
    epoll_wait_until(p, a, Deadline::from_ms(a[3] as i32 as i64))
}

/// eventfd.
pub fn eventfd(p: &mut Process, a: &Args) -> SysResult {
    eventfd2(p, &[a[0], 0, 0, 0, 0, 0])
}

/// eventfd2.
pub fn eventfd2(p: &mut Process, a: &Args) -> SysResult {
    const EFD_SEMAPHORE: u64 = 1;
    const EFD_NONBLOCK: u64 = 0o4000;
    const EFD_CLOEXEC: u64 = 0o2000000;
    if a[1] & !(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let file = File::EventFd(EventFd {
        counter: a[0] & 0xffff_ffff,
        wouldblock: 0,
        nonblocking: a[1] & EFD_NONBLOCK != 0,
        semaphore: a[1] & EFD_SEMAPHORE != 0,
    });
    Ok(p.fds
        .insert(Rc::new(RefCell::new(file)), a[1] & EFD_CLOEXEC != 0)? as u64)
}

/// read on an eventfd: the count (or one, as a semaphore); a blocking
/// read of zero waits for another thread's write.
pub fn eventfd_read(p: &mut Process, file: &FileRef, addr: u64, len: usize) -> SysResult {
    if len < 8 {
        return Err(Errno::EINVAL);
    }
    {
        let taken = match &mut *file.borrow_mut() {
            File::EventFd(e) if e.counter > 0 => {
                let v = if e.semaphore { 1 } else { e.counter };
                e.counter -= v;
                Some(v)
            }
            File::EventFd(e) if e.nonblocking => {
                e.wouldblock += 1;
                return Err(Errno::EAGAIN);
            }
            File::EventFd(_) => None,
            _ => return Err(Errno::EINVAL),
        };
        if let Some(v) = taken {
            p.write_user(addr, &v.to_le_bytes())?;
            return Ok(8);
        }
        p.net.poll();
        Err(Errno::ERESTARTNOINTR)
    }
}

/// write on an eventfd: adds to the count.
pub fn eventfd_write(p: &mut Process, file: &FileRef, addr: u64, len: usize) -> SysResult {
    if len < 8 {
        return Err(Errno::EINVAL);
    }
    let v = p.read_u64(addr)?;
    if v == u64::MAX {
        return Err(Errno::EINVAL);
    }
    match &mut *file.borrow_mut() {
        File::EventFd(e) => {
            if e.counter.checked_add(v).is_none_or(|n| n == u64::MAX) {
                return Err(Errno::EAGAIN);
            }
            e.counter += v;
            // Every write is an event of its own for an edge-triggered
            // epoll, as on Linux: tokio's and mio's wakers write to an
            // eventfd they never read.
            e.wouldblock += 1;
            Ok(8)
        }
        _ => Err(Errno::EINVAL),
    }
}
