//! The C memory functions that `core` and `compiler_builtins` call. The
//! host target's `compiler_builtins` expects libc to provide them, and a
//! freestanding guest has no libc.
//!
//! Written with `rep movsb`/`rep stosb` (fast on current CPUs and under
//! TCG), never as plain loops the compiler could turn back into calls to
//! themselves. It also holds the two unwinding symbols the prebuilt
//! libraries name.

use core::arch::asm;

/// # Safety
/// As C's `memcpy`: the ranges are valid and do not overlap.
#[no_mangle]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges; the direction flag is
    // clear (boot code clears it and nothing sets it). Eight bytes a step,
    // then the rest: under TCG each `rep` step costs the same whatever its
    // width.
    unsafe {
        asm!("rep movsq", "mov ecx, {tail:e}", "rep movsb",
             tail = in(reg) n & 7,
             inout("rcx") n / 8 => _, inout("rdi") dest => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// As C's `memmove`: the ranges are valid and may overlap.
#[no_mangle]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // SAFETY: the caller guarantees both ranges. `dest` is below `src`
        // or at least `n` bytes above it, so `memcpy`'s forward copy never
        // overwrites a source byte before reading it.
        return unsafe { memcpy(dest, src, n) };
    }
    // SAFETY: copying backwards from the last byte handles dest > src;
    // the direction flag is restored before returning.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dest.add(n).wrapping_sub(1) => _,
             inout("rsi") src.add(n).wrapping_sub(1) => _, options(nostack));
    }
    dest
}

/// # Safety
/// As C's `memset`: the range is valid.
#[no_mangle]
pub unsafe extern "C" fn memset(dest: *mut u8, value: i32, n: usize) -> *mut u8 {
    let byte = value as u8 as u64;
    let pattern = byte * 0x0101_0101_0101_0101;
    // SAFETY: the caller guarantees the range; eight bytes a step, then
    // the rest.
    unsafe {
        asm!("rep stosq", "mov ecx, {tail:e}", "rep stosb",
             tail = in(reg) n & 7,
             inout("rcx") n / 8 => _, inout("rdi") dest => _, in("rax") pattern,
             options(nostack, preserves_flags));
    }
    dest
}

/// # Safety
/// As C's `memcmp`: both ranges are valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // Skip equal eight-byte words; volatile reads keep the compiler from
    // recognising the loop as a call to this very function.
    while i + 8 <= n {
        // SAFETY: i + 8 <= n, within both ranges; unaligned reads allowed.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i) as *const [u8; 8]),
                core::ptr::read_volatile(b.add(i) as *const [u8; 8]),
            )
        };
        if x != y {
            break;
        }
        i += 8;
    }
    while i < n {
        // SAFETY: i < n, within both ranges.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// # Safety
/// As C's `bcmp`: both ranges are valid for `n` bytes.
#[no_mangle]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: `memcmp` has the same contract, which the caller upholds.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by the landing pads of the prebuilt `core` and `alloc`, which
/// are compiled for unwinding. Guests are built with `panic = "abort"`, so
/// no unwind ever starts and this is never reached.
#[no_mangle]
pub extern "C" fn _Unwind_Resume() -> ! {
    crate::console::kernel_line(format_args!("unwinding is not supported"));
    crate::arch::power_off(mayfly_proto::exit::PANIC)
}

/// The personality routine named by the prebuilt libraries' unwind
/// tables; never called, for the same reason.
#[no_mangle]
pub extern "C" fn rust_eh_personality() {}
