//! The initial stack of a Linux process, as `execve` leaves it for the
//! program's `_start`: `argc`, the `argv` and `envp` pointer arrays, the
//! auxiliary vector, and the strings and random bytes they point at.
//!
//! From the top down: a 16-byte pad; the strings, each NUL-terminated
//! (in memory, lowest first: the `argv` strings, the `envp` strings, the
//! platform `"x86_64"`, the program's name for `AT_EXECFN`, so that `argv`
//! and `envp` are contiguous as programs that rewrite them expect); the 16
//! `AT_RANDOM` bytes; padding; then the words `auxv` (ending with
//! `AT_NULL`), `envp` (ending with 0), `argv` (ending with 0) and `argc`
//! at the lowest address, `sp`, 16-byte aligned as the System V ABI wants
//! at process entry.
//!
//! ```
//! use mayfly_linux::stack::{build, AT_PAGESZ};
//! let stack = build(0x7fff_0000, &[b"/app/main", b"-v"], &[b"HOME=/"], &[(AT_PAGESZ, 4096)], &[7; 16], b"/app/main").unwrap();
//! assert_eq!(stack.sp % 16, 0);
//! assert_eq!(stack.sp + stack.bytes.len() as u64, 0x7fff_0000);
//! assert_eq!(stack.bytes[..8], 2u64.to_le_bytes()); // argc
//! ```

use alloc::vec;
use alloc::vec::Vec;

use crate::elf::LoadPlan;
use crate::errno::Errno;
use crate::vma::PAGE_SIZE;

/// Ends the auxiliary vector.
pub const AT_NULL: u64 = 0;
/// The address of the program headers in memory.
pub const AT_PHDR: u64 = 3;
/// The size of one program header.
pub const AT_PHENT: u64 = 4;
/// The number of program headers.
pub const AT_PHNUM: u64 = 5;
/// The page size.
pub const AT_PAGESZ: u64 = 6;
/// The interpreter's load address; 0 without one.
pub const AT_BASE: u64 = 7;
/// Flags; always 0.
pub const AT_FLAGS: u64 = 8;
/// The program's entry point.
pub const AT_ENTRY: u64 = 9;
/// The real user id.
pub const AT_UID: u64 = 11;
/// The effective user id.
pub const AT_EUID: u64 = 12;
/// The real group id.
pub const AT_GID: u64 = 13;
/// The effective group id.
pub const AT_EGID: u64 = 14;
/// The address of the platform string, `"x86_64"`.
pub const AT_PLATFORM: u64 = 15;
/// The CPU's feature bits (CPUID leaf 1, EDX).
pub const AT_HWCAP: u64 = 16;
/// The frequency `times` counts in.
pub const AT_CLKTCK: u64 = 17;
/// Whether the program runs with elevated privileges (no: 0).
pub const AT_SECURE: u64 = 23;
/// The address of 16 random bytes (libc's stack protector and pointer
/// guard are seeded from them).
pub const AT_RANDOM: u64 = 25;
/// More CPU feature bits.
pub const AT_HWCAP2: u64 = 26;
/// The address of the program's name as `execve` was given it.
pub const AT_EXECFN: u64 = 31;
/// The smallest signal stack the kernel's signal frame fits on.
pub const AT_MINSIGSTKSZ: u64 = 51;

/// The most bytes the initial stack may take, `argv` and `envp` included.
pub const MAX_STACK_BYTES: u64 = 1 << 20;
/// The longest single argument or environment string, NUL included
/// (Linux's `MAX_ARG_STRLEN`, 32 pages).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;
/// The platform string `AT_PLATFORM` points at.
const PLATFORM: &[u8] = b"x86_64";
/// `times`' tick rate, Linux's `USER_HZ`.
const CLOCK_TICKS: u64 = 100;

/// The initial stack: `bytes` are copied to `[sp, top)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialStack {
    /// The stack's contents, the byte at `sp` first.
    pub bytes: Vec<u8>,
    /// The initial stack pointer: 16-byte aligned, pointing at `argc`.
    pub sp: u64,
}

/// Builds the initial stack below `top` (exclusive).
///
/// `auxv` is the program's auxiliary vector without the entries this
/// function owns: any `AT_NULL`, `AT_RANDOM`, `AT_EXECFN` or `AT_PLATFORM`
/// in it is dropped, and those are added pointing at the bytes placed
/// here. Arguments and environment are byte strings, not UTF-8.
///
/// `E2BIG` when a string contains a NUL or is longer than
/// [`MAX_ARG_STRLEN`], when the whole exceeds [`MAX_STACK_BYTES`], or when
/// it does not fit below `top`.
pub fn build(
    top: u64,
    argv: &[&[u8]],
    envp: &[&[u8]],
    auxv: &[(u64, u64)],
    random: &[u8; 16],
    execfn: &[u8],
) -> Result<InitialStack, Errno> {
    let owned = [AT_NULL, AT_RANDOM, AT_EXECFN, AT_PLATFORM];
    let aux: Vec<(u64, u64)> = auxv
        .iter()
        .copied()
        .filter(|(key, _)| !owned.contains(key))
        .collect();

    // Every count and size is checked against the limit before anything is
    // allocated, so a hostile argument list costs nothing.
    let mut strings: u64 = 0;
    for s in argv.iter().chain(envp).copied().chain([PLATFORM, execfn]) {
        if s.contains(&0) || s.len() >= MAX_ARG_STRLEN {
            return Err(Errno::E2BIG);
        }
        strings = add(strings, s.len() as u64 + 1)?;
    }
    // argc, argv + NULL, envp + NULL, auxv + ours + AT_NULL, in words.
    let mut words = add(argv.len() as u64, envp.len() as u64)?;
    words = add(words, 3)?;
    words = add(words, mul(add(aux.len() as u64, 4)?, 2)?)?;
    let vector = mul(words, 8)?;

    let strings_start = sub(sub(top, 16)?, strings)?;
    let random_at = sub(strings_start, 16)?;
    let sp = sub(random_at, vector)? & !15;
    let total = top - sp;
    if total > MAX_STACK_BYTES {
        return Err(Errno::E2BIG);
    }
    let mut stack = Writer {
        bytes: vec![0; total as usize],
        base: sp,
    };

    let mut at = strings_start;
    let mut place = |stack: &mut Writer, s: &[u8]| -> Result<u64, Errno> {
        let addr = at;
        stack.put(addr, s)?;
        at = addr.checked_add(s.len() as u64 + 1).ok_or(Errno::E2BIG)?;
        Ok(addr)
    };
    let argv_at: Vec<u64> = argv
        .iter()
        .map(|s| place(&mut stack, s))
        .collect::<Result<_, _>>()?;
    let envp_at: Vec<u64> = envp
        .iter()
        .map(|s| place(&mut stack, s))
        .collect::<Result<_, _>>()?;
    let platform_at = place(&mut stack, PLATFORM)?;
    let execfn_at = place(&mut stack, execfn)?;
    stack.put(random_at, random)?;

    let mut vec: Vec<u64> = Vec::with_capacity(words as usize);
    vec.push(argv.len() as u64);
    vec.extend(&argv_at);
    vec.push(0);
    vec.extend(&envp_at);
    vec.push(0);
    let ours = [
        (AT_RANDOM, random_at),
        (AT_EXECFN, execfn_at),
        (AT_PLATFORM, platform_at),
        (AT_NULL, 0),
    ];
    for (key, value) in aux.into_iter().chain(ours) {
        vec.push(key);
        vec.push(value);
    }
    let words: Vec<u8> = vec.iter().flat_map(|w| w.to_le_bytes()).collect();
    stack.put(sp, &words)?;
    Ok(InitialStack {
        bytes: stack.bytes,
        sp,
    })
}

/// The auxiliary vector Linux gives a static program, for [`build`]:
/// where its program headers are, its entry, no interpreter, root's ids
/// (the VM has one user), and the CPU's feature bits `hwcap` (CPUID leaf
/// 1, EDX) and `minsigstksz` (the signal frame's size, which depends on
/// the CPU's XSAVE area).
pub fn standard_auxv(plan: &LoadPlan, hwcap: u64, minsigstksz: u64) -> Vec<(u64, u64)> {
    vec![
        (AT_HWCAP, hwcap),
        (AT_MINSIGSTKSZ, minsigstksz),
        (AT_PAGESZ, PAGE_SIZE),
        (AT_CLKTCK, CLOCK_TICKS),
        (AT_PHDR, plan.phdr),
        (AT_PHENT, u64::from(plan.phent)),
        (AT_PHNUM, u64::from(plan.phnum)),
        (AT_BASE, 0),
        (AT_FLAGS, 0),
        (AT_ENTRY, plan.entry),
        (AT_UID, 0),
        (AT_EUID, 0),
        (AT_GID, 0),
        (AT_EGID, 0),
        (AT_SECURE, 0),
        (AT_HWCAP2, 0),
    ]
}

/// `a + b`, or `E2BIG` past twice the limit: a stack that large could
/// never fit, and capping every size keeps the address arithmetic far from
/// overflow.
fn add(a: u64, b: u64) -> Result<u64, Errno> {
    let sum = a.checked_add(b).ok_or(Errno::E2BIG)?;
    if sum > MAX_STACK_BYTES * 2 {
        return Err(Errno::E2BIG);
    }
    Ok(sum)
}

/// `a * b`, capped as [`add`] caps.
fn mul(a: u64, b: u64) -> Result<u64, Errno> {
    add(a.checked_mul(b).ok_or(Errno::E2BIG)?, 0)
}

/// `a - b`, or `E2BIG` when the stack would fall below address 0.
fn sub(a: u64, b: u64) -> Result<u64, Errno> {
    a.checked_sub(b).ok_or(Errno::E2BIG)
}

/// The stack's bytes, addressed by where they will lie in memory.
struct Writer {
    bytes: Vec<u8>,
    base: u64,
}

impl Writer {
    /// Writes `data` at `addr` (a string's NUL is the zero already
    /// there); the layout's arithmetic keeps it inside, and an error, not
    /// a panic, would say otherwise.
    fn put(&mut self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        let from = usize::try_from(sub(addr, self.base)?).map_err(|_| Errno::E2BIG)?;
        let to = from.checked_add(data.len()).ok_or(Errno::E2BIG)?;
        self.bytes
            .get_mut(from..to)
            .ok_or(Errno::E2BIG)?
            .copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
