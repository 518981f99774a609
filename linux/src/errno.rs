//! Linux's error numbers (x86_64, `asm-generic/errno-base.h` and
//! `errno.h`), as a syscall returns them: negated in `rax`.
//!
//! ```
//! use mayfly_linux::errno::Errno;
//! assert_eq!(Errno::ENOSYS.as_return(), -38);
//! assert_eq!(Errno::ENOENT as i32, 2);
//! ```

/// A Linux error number.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Errno {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    ENOEXEC = 8,
    EBADF = 9,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    EXDEV = 18,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOTTY = 25,
    EFBIG = 27,
    ENOSPC = 28,
    ESPIPE = 29,
    EROFS = 30,
    EMLINK = 31,
    EPIPE = 32,
    EDOM = 33,
    ERANGE = 34,
    EDEADLK = 35,
    ENAMETOOLONG = 36,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ELOOP = 40,
    ENODATA = 61,
    EOVERFLOW = 75,
    ENOTSOCK = 88,
    EDESTADDRREQ = 89,
    EMSGSIZE = 90,
    EPROTOTYPE = 91,
    ENOPROTOOPT = 92,
    EPROTONOSUPPORT = 93,
    EOPNOTSUPP = 95,
    EAFNOSUPPORT = 97,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENETUNREACH = 101,
    ECONNABORTED = 103,
    ECONNRESET = 104,
    ENOBUFS = 105,
    EISCONN = 106,
    ENOTCONN = 107,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
    EHOSTUNREACH = 113,
    EALREADY = 114,
    EINPROGRESS = 115,
    /// Kernel-internal, never returned to a program: the syscall must wait;
    /// the dispatcher lets other threads run and makes it again.
    ERESTARTNOINTR = 513,
}

impl Errno {
    /// `EWOULDBLOCK` is `EAGAIN` on Linux.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;
    /// `ENOTSUP` is `EOPNOTSUPP` on Linux.
    pub const ENOTSUP: Errno = Errno::EOPNOTSUPP;

    /// The value a syscall returns for this error: its negation.
    pub const fn as_return(self) -> i64 {
        -(self as i64)
    }
}

/// A syscall's result before it is returned to the program.
pub type SysResult<T = u64> = Result<T, Errno>;

/// The value a syscall leaves in `rax`: the value, or the negated error.
pub fn to_return(result: SysResult) -> u64 {
    match result {
        Ok(value) => value,
        Err(e) => e.as_return() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_returned_negated() {
        assert_eq!(to_return(Ok(5)), 5);
        assert_eq!(to_return(Err(Errno::EBADF)) as i64, -9);
        assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
        assert_eq!(Errno::EINPROGRESS as i32, 115);
    }
}
