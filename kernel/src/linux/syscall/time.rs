//! Clocks and sleeping. The monotonic clock is the calibrated TSC; the
//! wall clock starts from the host's clock at the VM's start (the VM has
//! no RTC) and runs on the TSC. Sleeping keeps the network turning.

use core::sync::atomic::{AtomicU64, Ordering};

use mayfly_linux::abi;
use mayfly_linux::errno::{Errno, SysResult};

use super::Args;
use crate::clock;
use crate::linux::process::Process;

/// Nanoseconds since the epoch at boot (clock 0).
static WALL_AT_BOOT_NS: AtomicU64 = AtomicU64::new(0);

const CLOCK_REALTIME: u64 = 0;
const CLOCK_MONOTONIC: u64 = 1;
const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
const CLOCK_THREAD_CPUTIME_ID: u64 = 3;
const CLOCK_MONOTONIC_RAW: u64 = 4;
const CLOCK_REALTIME_COARSE: u64 = 5;
const CLOCK_MONOTONIC_COARSE: u64 = 6;
const CLOCK_BOOTTIME: u64 = 7;

/// Sets the wall clock from the host's, in ms since the epoch, as of now.
pub fn set_wall_clock(host_ms: u64) {
    let now = monotonic_ns();
    WALL_AT_BOOT_NS.store((host_ms * 1_000_000).saturating_sub(now), Ordering::Relaxed);
}

/// Nanoseconds since boot.
pub fn monotonic_ns() -> u64 {
    clock::micros() * 1000
}

/// Nanoseconds since the Unix epoch.
pub fn realtime_ns() -> u64 {
    WALL_AT_BOOT_NS.load(Ordering::Relaxed) + monotonic_ns()
}

fn read_clock(id: u64) -> SysResult<u64> {
    match id {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE => Ok(realtime_ns()),
        CLOCK_MONOTONIC | CLOCK_MONOTONIC_RAW | CLOCK_MONOTONIC_COARSE | CLOCK_BOOTTIME => {
            Ok(monotonic_ns())
        }
        // One thread that never waits for a CPU: its CPU time is the time
        // since boot.
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => Ok(monotonic_ns()),
        _ => Err(Errno::EINVAL),
    }
}

fn timespec(ns: u64) -> [u8; 16] {
    abi::timespec_bytes((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as i64)
}

/// clock_gettime.
pub fn clock_gettime(p: &mut Process, a: &Args) -> SysResult {
    let ns = read_clock(a[0])?;
    p.write_user(a[1], &timespec(ns))?;
    Ok(0)
}

/// clock_getres: a microsecond.
pub fn clock_getres(p: &mut Process, a: &Args) -> SysResult {
    read_clock(a[0])?;
    if a[1] != 0 {
        p.write_user(a[1], &timespec(1000))?;
    }
    Ok(0)
}

/// gettimeofday.
pub fn gettimeofday(p: &mut Process, a: &Args) -> SysResult {
    if a[0] != 0 {
        let ns = realtime_ns();
        let mut tv = [0u8; 16];
        tv[..8].copy_from_slice(&((ns / 1_000_000_000) as i64).to_le_bytes());
        tv[8..].copy_from_slice(&(((ns % 1_000_000_000) / 1000) as i64).to_le_bytes());
        p.write_user(a[0], &tv)?;
    }
    Ok(0)
}

/// time.
pub fn time(p: &mut Process, a: &Args) -> SysResult {
    let secs = realtime_ns() / 1_000_000_000;
    if a[0] != 0 {
        p.write_user(a[0], &secs.to_le_bytes())?;
    }
    Ok(secs)
}

fn duration_ns(sec: i64, nsec: i64) -> SysResult<u64> {
    if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
        return Err(Errno::EINVAL);
    }
    Ok((sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(nsec as u64))
}

/// The monotonic time (ns) a wait given as `sec`, `nsec` ends at: from
/// now, or absolute on the monotonic or the realtime clock.
pub fn deadline_of(sec: i64, nsec: i64, absolute: bool, realtime: bool) -> SysResult<u64> {
    let ns = duration_ns(sec, nsec)?;
    Ok(if absolute {
        if realtime {
            ns.saturating_sub(WALL_AT_BOOT_NS.load(Ordering::Relaxed))
        } else {
            ns
        }
    } else {
        monotonic_ns().saturating_add(ns)
    })
}

/// The deadline (monotonic ns) of the waiting syscall being made, from the
/// program's timespec at `addr`: read on the first attempt, kept for the
/// restarts (see [`super::deadline`]).
pub fn user_deadline(p: &mut Process, addr: u64, absolute: bool, realtime: bool) -> SysResult<u64> {
    if let Some(deadline) = crate::linux::sched::current().deadline {
        return Ok(deadline);
    }
    let ts = p.read_array::<16>(addr)?;
    let (sec, nsec) = abi::read_timespec(&ts).ok_or(Errno::EINVAL)?;
    let deadline = deadline_of(sec, nsec, absolute, realtime)?;
    Ok(super::deadline(|| deadline))
}

/// Waits until `deadline`: the syscall is made again (other threads
/// running meanwhile) until it has passed.
fn wait_until(p: &mut Process, deadline: u64) -> SysResult<()> {
    p.net.poll();
    if monotonic_ns() < deadline {
        return Err(Errno::ERESTARTNOINTR);
    }
    Ok(())
}

/// nanosleep.
pub fn nanosleep(p: &mut Process, a: &Args) -> SysResult {
    let deadline = user_deadline(p, a[0], false, false)?;
    wait_until(p, deadline)?;
    Ok(0)
}

/// clock_nanosleep.
pub fn clock_nanosleep(p: &mut Process, a: &Args) -> SysResult {
    const TIMER_ABSTIME: u64 = 1;
    read_clock(a[0])?;
    let deadline = user_deadline(p, a[2], a[1] & TIMER_ABSTIME != 0, a[0] == CLOCK_REALTIME)?;
    wait_until(p, deadline)?;
    Ok(0)
}
