//! The Linux personality of Mayfly's kernel, the parts that do no I/O and
//! touch no hardware: everything here is plain logic over bytes, tested on
//! the host with `cargo test -p mayfly-linux`, and linked by the kernel
//! (`kernel/src/linux/`), which adds page tables, ring 3, the syscall entry
//! and the network.
//!
//! - [`errno`]: Linux's error numbers;
//! - [`elf`]: a static executable's load plan (ET_EXEC or static-pie);
//! - [`stack`]: the initial stack (argv, envp, auxv, AT_RANDOM);
//! - [`vma`]: the address space's regions (mmap, munmap, mprotect, brk);
//! - [`vfs`]: the file system: the package read-only at `/`, `/tmp` bounded,
//!   `/dev`;
//! - [`fd`]: the descriptor table;
//! - [`abi`]: Linux's structure layouts and flag values;
//! - [`names`]: every x86_64 syscall's name, for the "unsupported" line;
//! - [`signal`]: what becomes of a signal sent, and which interrupted
//!   syscalls are made again.
#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod abi;
pub mod elf;
pub mod errno;
pub mod fd;
pub mod names;
pub mod signal;
pub mod stack;
pub mod vfs;
pub mod vma;
