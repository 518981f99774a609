//! Linux's rules for signals a program sends itself: what becomes of one
//! when it is sent ([`disposition`]), and whether a syscall its handler
//! interrupted is made again ([`restarts_after_handler`]).
//!
//! ```
//! use mayfly_linux::signal::{disposition, Disposition, SIG_DFL, SIG_IGN};
//! const SIGURG: u8 = 23;
//! const SIGTERM: u8 = 15;
//! assert_eq!(disposition(SIG_DFL, SIGURG, 0), Disposition::Discard);
//! assert_eq!(disposition(SIG_DFL, SIGTERM, 0), Disposition::Kill);
//! assert_eq!(disposition(0x45_eca0, SIGURG, 0), Disposition::Queue);
//! assert_eq!(disposition(SIG_IGN, SIGTERM, 0), Disposition::Discard);
//! ```

/// The default action (`sa_handler` 0).
pub const SIG_DFL: u64 = 0;
/// Ignore (`sa_handler` 1).
pub const SIG_IGN: u64 = 1;
/// `sa_flags`: make the interrupted syscall again after the handler.
pub const SA_RESTART: u64 = 0x1000_0000;

const SIGKILL: u8 = 9;
const SIGSTOP: u8 = 19;

/// Signals whose default action is to do nothing: SIGCHLD, SIGCONT,
/// SIGURG, SIGWINCH.
pub fn ignored_by_default(signal: u8) -> bool {
    matches!(signal, 17 | 18 | 23 | 28)
}

/// What becomes of a signal sent to a thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Nothing: ignored, explicitly or by default.
    Discard,
    /// Kept pending for the thread: it has a handler, or it is blocked
    /// (SIGKILL and SIGSTOP never are).
    Queue,
    /// It ends the process now: the default action, not blocked.
    Kill,
}

/// Where `signal` (1..=64) goes if sent now to a thread whose blocked set
/// is `mask`, with `handler` as its action's `sa_handler`.
pub fn disposition(handler: u64, signal: u8, mask: u64) -> Disposition {
    let unblockable = signal == SIGKILL || signal == SIGSTOP;
    let blocked = !unblockable && mask & (1 << (signal - 1)) != 0;
    match handler {
        _ if signal == SIGKILL => Disposition::Kill,
        SIG_IGN => Disposition::Discard,
        SIG_DFL if ignored_by_default(signal) => Disposition::Discard,
        SIG_DFL if !blocked => Disposition::Kill,
        _ => Disposition::Queue,
    }
}

/// Whether syscall `nr` with `args`, interrupted by a handler installed
/// with `sa_flags`, is made again once the handler returns (as Linux's
/// ERESTARTSYS); otherwise it answers EINTR. poll, select, the sleeps,
/// epoll_wait and rt_sigsuspend (and their variants) never are
/// (ERESTARTNOHAND, ERESTART_RESTARTBLOCK), nor a futex wait with a
/// timeout.
pub fn restarts_after_handler(sa_flags: u64, nr: u64, args: &[u64; 6]) -> bool {
    const FUTEX: u64 = 202;
    const FUTEX_WAIT: u64 = 0;
    const FUTEX_WAIT_BITSET: u64 = 9;
    let op = args[1] & 0x7f;
    let timed_futex = nr == FUTEX && (op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET) && args[3] != 0;
    let never = matches!(nr, 7 | 23 | 35 | 130 | 230 | 232 | 270 | 271 | 281);
    sa_flags & SA_RESTART != 0 && !never && !timed_futex
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDLER: u64 = 0x40_1000;

    #[test]
    fn a_blocked_fatal_signal_waits_and_an_unblocked_one_kills() {
        const SIGTERM: u8 = 15;
        let blocked = 1 << (SIGTERM - 1);
        assert_eq!(disposition(SIG_DFL, SIGTERM, blocked), Disposition::Queue);
        assert_eq!(disposition(SIG_DFL, SIGTERM, 0), Disposition::Kill);
        assert_eq!(disposition(HANDLER, SIGTERM, blocked), Disposition::Queue);
    }

    #[test]
    fn sigkill_cannot_be_blocked_handled_or_ignored() {
        for handler in [SIG_DFL, SIG_IGN, HANDLER] {
            assert_eq!(disposition(handler, SIGKILL, u64::MAX), Disposition::Kill);
        }
    }

    #[test]
    fn default_ignored_signals_are_discarded_unless_handled() {
        for signal in [17, 18, 23, 28] {
            assert_eq!(disposition(SIG_DFL, signal, 0), Disposition::Discard);
            assert_eq!(disposition(HANDLER, signal, 0), Disposition::Queue);
        }
    }

    #[test]
    fn restart_follows_sa_restart_except_where_linux_never_restarts() {
        let read = [3, 0, 0, 0, 0, 0];
        assert!(restarts_after_handler(SA_RESTART, 0, &read));
        assert!(!restarts_after_handler(0, 0, &read));
        for never in [7, 23, 35, 130, 230, 232, 270, 271, 281] {
            assert!(!restarts_after_handler(SA_RESTART, never, &read), "{never}");
        }
        let futex_wait = |timeout| [0x1000, 0x80, 1, timeout, 0, 0];
        assert!(restarts_after_handler(SA_RESTART, 202, &futex_wait(0)));
        assert!(!restarts_after_handler(
            SA_RESTART,
            202,
            &futex_wait(0x7fff_0000)
        ));
    }
}
