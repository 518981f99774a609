//! The program's half of the page tables: 4 KiB pages in the lower half,
//! built on demand from page frames, beside the kernel's own mappings
//! (its image in the low 4 MiB, supervisor-only, and the upper-half alias
//! of all RAM).

use alloc::vec::Vec;
use core::arch::asm;
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{AtomicBool, Ordering};

use mayfly_linux::vma::{PROT_EXEC, PROT_WRITE};

use crate::global::Global;
use crate::heap::{self, alloc_frame, phys_to_virt, virt_to_phys};

/// Present.
const P: u64 = 1;
/// Writable.
const W: u64 = 1 << 1;
/// Reachable from ring 3.
const U: u64 = 1 << 2;
/// A 2 MiB page (in a page directory).
const PS: u64 = 1 << 7;
/// Not executable (EFER.NXE is on).
const NX: u64 = 1 << 63;
/// Software bit: a frame that is mapped but made inaccessible by
/// `mprotect(PROT_NONE)`; the entry is not present, but keeps its frame,
/// so the contents survive until access is given back.
const PARKED: u64 = 1 << 9;
/// The physical address bits of an entry.
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// The low 4 MiB hold the kernel image: two 2 MiB pages the program never
/// sees.
pub const KERNEL_LOW_END: u64 = 4 << 20;

extern "C" {
    static mut BOOT_PML4: [u64; 512];
    static BOOT_PD: [u64; 512];
    static __kernel_end: u8;
}

/// Why a page could not be mapped.
#[derive(Debug)]
pub struct OutOfFrames;

fn table(entry: u64) -> *mut [u64; 512] {
    phys_to_virt(entry & ADDR) as *mut [u64; 512]
}

/// Replaces the boot identity map of the lower half by an empty one for
/// the program, keeping the kernel image's 4 MiB (supervisor-only), and
/// turns on no-execute support.
pub fn init() -> Result<(), OutOfFrames> {
    let kernel_end = addr_of!(__kernel_end) as u64;
    if kernel_end > KERNEL_LOW_END {
        crate::linux::fatal(format_args!(
            "the kernel image ends at {kernel_end:#x}, above the 4 MiB kept for it"
        ));
    }
    let pdpt = alloc_frame().ok_or(OutOfFrames)?;
    let pd = alloc_frame().ok_or(OutOfFrames)?;
    // SAFETY: the two frames were just allocated (zeroed) and are ours; the
    // boot tables are only read. Entries 0 and 1 of the boot page
    // directory map the kernel image (the second may be the 4 KiB table
    // with the stack's guard page left out), and are copied as they are.
    unsafe {
        let pd_table = &mut *(pd as *mut [u64; 512]);
        let boot_pd = &*addr_of!(BOOT_PD);
        pd_table[0] = boot_pd[0];
        pd_table[1] = boot_pd[1];
        let pdpt_table = &mut *(pdpt as *mut [u64; 512]);
        pdpt_table[0] = virt_to_phys(pd) | P | W | U;
        let pml4 = &mut *addr_of_mut!(BOOT_PML4);
        pml4[0] = virt_to_phys(pdpt) | P | W | U;
        // EFER.NXE, so that data pages can be mapped not executable.
        let (mut lo, hi): (u32, u32);
        asm!("rdmsr", in("ecx") 0xC000_0080u32, out("eax") lo, out("edx") hi, options(nomem, nostack));
        lo |= 1 << 11;
        asm!("wrmsr", in("ecx") 0xC000_0080u32, in("eax") lo, in("edx") hi, options(nomem, nostack));
        flush_all();
    }
    Ok(())
}

/// Reloads CR3, dropping every cached translation.
pub fn flush_all() {
    // SAFETY: writing CR3 with its own value only flushes the TLB.
    unsafe {
        asm!("mov {t}, cr3", "mov cr3, {t}", t = out(reg) _, options(nostack, preserves_flags));
    }
}

fn flush(addr: u64) {
    // SAFETY: follows a change to the entry for `addr`.
    unsafe { crate::arch::invlpg(addr as usize) };
}

/// Whether an entry lost a frame or an access right since the last
/// [`settle`]: other CPUs may still have it in their TLBs.
static STALE: AtomicBool = AtomicBool::new(false);
/// Frames unmapped since the last [`settle`] while other CPUs run: they
/// may still be reached through those CPUs' TLBs until the shootdown.
static UNSETTLED: Global<Vec<u64>> = Global::new(Vec::new());

/// After page-table changes: if another CPU may still cache what was
/// taken away, shoots its TLB down, then frees the frames unmapped
/// meanwhile. Called (with the kernel lock) before every return to ring 3.
pub fn settle() {
    if !STALE.swap(false, Ordering::Relaxed) {
        return;
    }
    super::smp::shoot_down();
    let frames = UNSETTLED.with(core::mem::take).unwrap_or_default();
    for frame in frames {
        // SAFETY: unmapped before the shootdown, which has made every CPU
        // forget it: nothing maps it any more.
        unsafe { heap::free_frame(frame) };
    }
}

/// Notes that the entry just changed took something away.
fn taken_away() {
    if super::smp::several_online() {
        STALE.store(true, Ordering::Relaxed);
    }
}

/// The page-table entry for `addr`, creating the tables on the way when
/// `create`; `None` if a table is missing (and not created) or the address
/// is not in the program's half.
fn entry(addr: u64, create: bool) -> Result<Option<*mut u64>, OutOfFrames> {
    if !(KERNEL_LOW_END..0x0000_8000_0000_0000).contains(&addr) {
        return Ok(None);
    }
    // SAFETY: the PML4 is the boot one, a static; lower-level tables are
    // frames reached through the alias. Entries of the program's half are
    // only ever written here, under the kernel lock.
    unsafe {
        let mut current: *mut [u64; 512] = addr_of_mut!(BOOT_PML4);
        for shift in [39u32, 30, 21] {
            let index = ((addr >> shift) & 511) as usize;
            let slot = &mut (*current)[index];
            if *slot & P == 0 {
                if !create {
                    return Ok(None);
                }
                let frame = alloc_frame().ok_or(OutOfFrames)?;
                *slot = virt_to_phys(frame) | P | W | U;
            } else if *slot & PS != 0 {
                // The kernel's own 2 MiB pages: never the program's.
                return Ok(None);
            }
            current = table(*slot);
        }
        Ok(Some(&mut (*current)[((addr >> 12) & 511) as usize]))
    }
}

fn flags(prot: u32) -> u64 {
    let mut flags = P | U;
    if prot & PROT_WRITE != 0 {
        flags |= W;
    }
    if prot & PROT_EXEC == 0 {
        flags |= NX;
    }
    flags
}

/// What the entry for a page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// Nothing mapped.
    Absent,
    /// Mapped, with a frame, accessible.
    Present,
    /// Mapped with a frame, made inaccessible by `mprotect`.
    Parked,
}

/// The state of the page at `page`.
pub fn state(page: u64) -> PageState {
    match entry(page, false) {
        // SAFETY: `entry` returned a pointer into a live table.
        Ok(Some(e)) => match unsafe { *e } {
            v if v & P != 0 => PageState::Present,
            v if v & PARKED != 0 => PageState::Parked,
            _ => PageState::Absent,
        },
        _ => PageState::Absent,
    }
}

/// Maps the frame at alias address `frame` at `page` with `prot`.
pub fn map(page: u64, frame: u64, prot: u32) -> Result<(), OutOfFrames> {
    let Some(e) = entry(page, true)? else {
        return Err(OutOfFrames);
    };
    let value = if prot == 0 {
        virt_to_phys(frame) | PARKED
    } else {
        virt_to_phys(frame) | flags(prot)
    };
    // SAFETY: a live entry of the program's half.
    let old = unsafe { core::mem::replace(&mut *e, value) };
    flush(page);
    if old & P != 0 {
        taken_away();
    }
    Ok(())
}

/// Changes the protection of a page that has a frame (present or
/// parked); pages without one are left alone (they fault in later with
/// the region's new protection).
pub fn protect(page: u64, prot: u32) {
    if let Ok(Some(e)) = entry(page, false) {
        // SAFETY: a live entry of the program's half.
        unsafe {
            let old = *e;
            if old & (P | PARKED) == 0 {
                return;
            }
            let frame = old & ADDR;
            let new = if prot == 0 {
                frame | PARKED
            } else {
                frame | flags(prot)
            };
            *e = new;
            let lost_write = old & W != 0 && new & W == 0;
            let lost_exec = old & NX == 0 && new & NX != 0;
            if old & P != 0 && (new & P == 0 || lost_write || lost_exec) {
                taken_away();
            }
        }
        flush(page);
    }
}

/// Unmaps the page at `page` and frees its frame, if it had one.
pub fn unmap(page: u64) {
    if let Ok(Some(e)) = entry(page, false) {
        // SAFETY: a live entry of the program's half; once cleared and
        // flushed, nothing on this CPU maps the frame any more. With other
        // CPUs running, it is freed only once they have flushed too.
        unsafe {
            let old = *e;
            if old & (P | PARKED) == 0 {
                return;
            }
            *e = 0;
            flush(page);
            let frame = phys_to_virt(old & ADDR);
            if super::smp::several_online() {
                STALE.store(true, Ordering::Relaxed);
                if UNSETTLED.with(|frames| frames.push(frame)).is_none() {
                    super::fatal(format_args!("page tables changed re-entrantly"));
                }
            } else {
                heap::free_frame(frame);
            }
        }
    }
}

/// Calls `f` with every page in `[start, end)` whose page table exists,
/// skipping whole tables that do not: a program that unmaps or protects a
/// large reservation it never touched costs a few table reads, not one
/// walk per page.
pub fn for_each_mapped(start: u64, end: u64, mut f: impl FnMut(u64)) {
    let mut addr = start & !0xfff;
    while addr < end {
        // The span the first missing level would cover, if one is missing.
        let mut skip = None;
        // SAFETY: as in `entry`: the boot PML4 and frames through the
        // alias, only read here.
        unsafe {
            let mut current: *mut [u64; 512] = addr_of_mut!(BOOT_PML4);
            for shift in [39u32, 30, 21] {
                let slot = (*current)[((addr >> shift) & 511) as usize];
                if slot & P == 0 || slot & PS != 0 {
                    skip = Some(1u64 << shift);
                    break;
                }
                current = table(slot);
            }
        }
        match skip {
            Some(span) => addr = (addr & !(span - 1)).saturating_add(span),
            None => {
                f(addr);
                addr += 4096;
            }
        }
    }
}

/// The alias address of the frame behind `page`, if it has one.
pub fn frame_of(page: u64) -> Option<u64> {
    match entry(page, false) {
        // SAFETY: a live entry of the program's half.
        Ok(Some(e)) => {
            // SAFETY: `entry` returned a pointer into a live table.
            let v = unsafe { *e };
            (v & (P | PARKED) != 0).then(|| phys_to_virt(v & ADDR))
        }
        _ => None,
    }
}
