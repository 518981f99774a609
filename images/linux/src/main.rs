//! The generic kernel for Linux functions: one image for all of them. The
//! function's package arrives as the initrd, and the program the boot
//! configuration names (`/var/task/bootstrap` for a function) runs in ring
//! 3 under the kernel's Linux personality.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

mayfly_kernel::linux_entry!();
