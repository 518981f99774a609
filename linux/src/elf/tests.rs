use super::*;
use crate::vma::{AddressSpace, RegionKind};
use alloc::vec;

const R: u32 = PF_R;
const RX: u32 = PF_R | PF_X;
const RW: u32 = PF_R | PF_W;
const PT_NOTE: u32 = 4;

/// One program header for [`elf`].
#[derive(Clone, Copy)]
struct Ph {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    file_size: u64,
    mem_size: u64,
    align: u64,
}

fn load(flags: u32, offset: u64, vaddr: u64, file_size: u64, mem_size: u64) -> Ph {
    Ph {
        kind: PT_LOAD,
        flags,
        offset,
        vaddr,
        file_size,
        mem_size,
        align: 0x1000,
    }
}

fn other(kind: u32, offset: u64, vaddr: u64, size: u64) -> Ph {
    Ph {
        kind,
        flags: R,
        offset,
        vaddr,
        file_size: size,
        mem_size: size,
        align: 8,
    }
}

/// Assembles an ELF64 x86_64 file: the header, the program headers right
/// after it (offset 64), zeros up to `len`.
fn elf(kind: u16, entry: u64, phdrs: &[Ph], len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(64 + phdrs.len() * 56)];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&kind.to_le_bytes());
    b[18..20].copy_from_slice(&62u16.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    b[24..32].copy_from_slice(&entry.to_le_bytes());
    b[32..40].copy_from_slice(&64u64.to_le_bytes());
    b[52..54].copy_from_slice(&64u16.to_le_bytes());
    b[54..56].copy_from_slice(&56u16.to_le_bytes());
    b[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for (i, p) in phdrs.iter().enumerate() {
        let at = 64 + i * 56;
        b[at..at + 4].copy_from_slice(&p.kind.to_le_bytes());
        b[at + 4..at + 8].copy_from_slice(&p.flags.to_le_bytes());
        for (j, v) in [p.offset, p.vaddr, p.vaddr, p.file_size, p.mem_size, p.align]
            .iter()
            .enumerate()
        {
            b[at + 8 + j * 8..at + 16 + j * 8].copy_from_slice(&v.to_le_bytes());
        }
    }
    b
}

/// A static program laid out as GNU ld lays out a static musl one:
/// headers and rodata, text, more rodata, data with bss.
fn typical() -> Vec<u8> {
    elf(
        ET_EXEC,
        0x40_1010,
        &[
            load(R, 0, 0x40_0000, 0x200, 0x200),
            load(RX, 0x1000, 0x40_1000, 0x500, 0x500),
            load(R, 0x2000, 0x40_2000, 0x300, 0x300),
            load(RW, 0x2f00, 0x40_3f00, 0x100, 0x2000),
            other(0x6474_e551, 0, 0, 0), // PT_GNU_STACK
        ],
        0x3000,
    )
}

#[test]
fn a_typical_static_program_is_planned_as_linux_loads_it() {
    let plan = plan(&typical(), PIE_BASE_FOR_TESTS).unwrap();
    assert_eq!(plan.entry, 0x40_1010);
    assert_eq!(plan.bias, 0);
    assert_eq!(plan.phdr, 0x40_0040);
    assert_eq!((plan.phent, plan.phnum), (56, 5));
    assert_eq!(plan.end, 0x40_6000);
    let prots: Vec<u32> = plan.segments.iter().map(|s| s.prot).collect();
    assert_eq!(
        prots,
        vec![
            PROT_READ,
            PROT_READ | PROT_EXEC,
            PROT_READ,
            PROT_READ | PROT_WRITE
        ]
    );
    let bss = plan.segments[3];
    assert_eq!(
        (bss.vaddr, bss.mem_size, bss.file_offset, bss.file_size),
        (0x40_3f00, 0x2000, 0x2f00, 0x100)
    );
    assert_eq!(bss.end(), 0x40_5f00);
    assert_eq!(
        bss.backing(4),
        Backing::File {
            source: 4,
            start: 0x40_3f00,
            offset: 0x2f00,
            size: 0x100
        }
    );
}

const PIE_BASE_FOR_TESTS: u64 = crate::vma::PIE_BASE;

#[test]
fn a_static_pie_is_biased_by_the_base() {
    let bytes = elf(
        ET_DYN,
        0x1234,
        &[
            other(PT_PHDR, 64, 64, 3 * 56),
            load(R, 0, 0, 0x800, 0x800),
            load(RX, 0x1000, 0x1000, 0x1000, 0x1000),
            other(2, 0x800, 0x800, 0x10), // PT_DYNAMIC: a static-pie has one
        ],
        0x2000,
    );
    let plan = plan(&bytes, PIE_BASE_FOR_TESTS).unwrap();
    assert_eq!(plan.bias, PIE_BASE_FOR_TESTS);
    assert_eq!(plan.entry, PIE_BASE_FOR_TESTS + 0x1234);
    assert_eq!(plan.phdr, PIE_BASE_FOR_TESTS + 64);
    assert_eq!(plan.segments[1].vaddr, PIE_BASE_FOR_TESTS + 0x1000);
    assert_eq!(plan.end, PIE_BASE_FOR_TESTS + 0x2000);
    assert_eq!(
        super::plan(&bytes, PIE_BASE_FOR_TESTS + 1),
        Err(ElfError::Malformed("unaligned load base"))
    );
    assert_eq!(super::plan(&bytes, 0), Err(ElfError::BelowUserSpace(0)));
}

#[test]
fn pt_phdr_wins_and_uncovered_headers_give_zero() {
    let mut phdrs = vec![
        load(RX, 0x1000, 0x40_1000, 0x100, 0x100),
        other(PT_PHDR, 64, 0x40_0040, 2 * 56),
    ];
    assert_eq!(
        plan(&elf(ET_EXEC, 0x40_1000, &phdrs, 0x1100), 0)
            .unwrap()
            .phdr,
        0x40_0040
    );
    phdrs.pop();
    phdrs.push(other(PT_NOTE, 0x1000, 0, 4));
    assert_eq!(
        plan(&elf(ET_EXEC, 0x40_1000, &phdrs, 0x1100), 0)
            .unwrap()
            .phdr,
        0
    );
    // Covered only in part: not trusted.
    let phdrs = [
        load(RX, 0, 0x40_0000, 64 + 56, 0x1000),
        other(PT_NOTE, 0, 0, 0),
    ];
    assert_eq!(
        plan(&elf(ET_EXEC, 0x40_0000, &phdrs, 0x1000), 0)
            .unwrap()
            .phdr,
        0
    );
}

#[test]
fn dynamically_linked_programs_are_refused() {
    let phdrs = [
        other(PT_INTERP, 0x200, 0x40_0200, 28),
        load(RX, 0, 0x40_0000, 0x1000, 0x1000),
    ];
    assert_eq!(
        plan(&elf(ET_EXEC, 0x40_0100, &phdrs, 0x1000), 0),
        Err(ElfError::Dynamic)
    );
    assert_eq!(
        plan(&elf(ET_DYN, 0x100, &phdrs, 0x1000), PIE_BASE_FOR_TESTS),
        Err(ElfError::Dynamic)
    );
}

#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
#[test]
fn this_test_binary_a_dynamic_pie_is_refused_as_dynamic() {
    let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    assert_eq!(plan(&me, PIE_BASE_FOR_TESTS), Err(ElfError::Dynamic));
}

#[test]
fn what_is_not_an_x86_64_elf_executable_is_named() {
    assert_eq!(plan(b"", 0), Err(ElfError::NotElf));
    assert_eq!(plan(b"\x7fEL", 0), Err(ElfError::NotElf));
    assert_eq!(plan(b"MZ\x90\x00", 0), Err(ElfError::NotElf));
    let good = typical();
    let with = |at: usize, value: &[u8]| {
        let mut b = good.clone();
        b[at..at + value.len()].copy_from_slice(value);
        plan(&b, 0)
    };
    assert_eq!(with(4, &[1]), Err(ElfError::WrongClass));
    assert_eq!(with(5, &[2]), Err(ElfError::Malformed("not little-endian")));
    assert_eq!(
        with(18, &183u16.to_le_bytes()),
        Err(ElfError::WrongMachine(183))
    );
    assert_eq!(
        with(16, &1u16.to_le_bytes()),
        Err(ElfError::NotExecutable(1))
    );
    assert_eq!(
        with(16, &4u16.to_le_bytes()),
        Err(ElfError::NotExecutable(4))
    );
    assert_eq!(
        plan(&good[..5], 0),
        Err(ElfError::Malformed("truncated header"))
    );
    assert_eq!(
        plan(&good[..40], 0),
        Err(ElfError::Malformed("truncated header"))
    );
}

#[test]
fn program_header_tables_outside_the_file_are_refused() {
    let good = typical();
    let with = |at: usize, value: &[u8]| {
        let mut b = good.clone();
        b[at..at + value.len()].copy_from_slice(value);
        plan(&b, 0)
    };
    let outside = Err(ElfError::Malformed("program headers outside the file"));
    assert_eq!(
        with(54, &32u16.to_le_bytes()),
        Err(ElfError::Malformed("program header size"))
    );
    assert_eq!(
        with(54, &64u16.to_le_bytes()),
        Err(ElfError::Malformed("program header size"))
    );
    assert_eq!(
        with(56, &0u16.to_le_bytes()),
        Err(ElfError::Malformed("program header count"))
    );
    assert_eq!(
        with(56, &0xffffu16.to_le_bytes()),
        Err(ElfError::Malformed("program header count"))
    );
    assert_eq!(with(56, &300u16.to_le_bytes()), outside);
    assert_eq!(with(32, &0x3000u64.to_le_bytes()), outside);
    assert_eq!(with(32, &(u64::MAX - 10).to_le_bytes()), outside);
    assert_eq!(plan(&good[..64 + 4 * 56], 0), outside);
}

/// Plans a program whose only text segment is `p`, entry at its start.
fn only(p: Ph, len: usize) -> Result<LoadPlan, ElfError> {
    plan(&elf(ET_EXEC, p.vaddr, &[p], len), 0)
}

#[test]
fn inconsistent_segments_are_refused() {
    let m = ElfError::Malformed;
    assert_eq!(
        only(load(RX, 0, 0x40_0000, 0x200, 0x100), 0x1000),
        Err(m("segment's file size exceeds its memory size"))
    );
    assert_eq!(
        only(load(RX, 0, 0x40_0000, 0x1001, 0x2000), 0x1000),
        Err(m("segment outside the file"))
    );
    assert_eq!(
        only(load(RX, u64::MAX, 0x40_0000, 2, 2), 0x1000),
        Err(m("segment outside the file"))
    );
    let misaligned = m("segment's address and offset disagree modulo the page size");
    assert_eq!(
        only(load(RX, 0x10, 0x40_0000, 0x100, 0x100), 0x1000),
        Err(misaligned)
    );
    let unaligned_ok = Ph {
        align: 1,
        ..load(RX, 0x10, 0x40_0000, 0x100, 0x100)
    };
    assert!(only(unaligned_ok, 0x1000).is_ok());
    let unaligned_ok = Ph {
        align: 0,
        ..unaligned_ok
    };
    assert!(only(unaligned_ok, 0x1000).is_ok());
}

#[test]
fn segments_must_lie_in_user_space() {
    assert_eq!(
        only(load(RX, 0, 0x1000, 0x10, 0x10), 0x1000),
        Err(ElfError::BelowUserSpace(0x1000))
    );
    assert_eq!(
        only(load(RX, 0, 0, 0x10, 0x10), 0x1000),
        Err(ElfError::BelowUserSpace(0))
    );
    assert_eq!(
        only(load(RX, 0x10, 0x3f_f010, 0x10, 0x10), 0x1000),
        Err(ElfError::BelowUserSpace(0x3f_f010))
    );
    assert_eq!(
        only(load(RX, 0, USER_END, 0x10, 0x10), 0x1000),
        Err(ElfError::OutsideUserSpace)
    );
    assert_eq!(
        only(load(RX, 0, USER_END - 0x1000, 0x10, 0x1001), 0x1000),
        Err(ElfError::OutsideUserSpace)
    );
    assert_eq!(
        only(load(RX, 0, 0x40_0000, 0x10, u64::MAX), 0x1000),
        Err(ElfError::OutsideUserSpace)
    );
    assert_eq!(
        only(load(RX, 0, page_down(u64::MAX), 0x10, 0x10), 0x1000),
        Err(ElfError::OutsideUserSpace)
    );
    let top = load(RX, 0, USER_END - 0x1000, 0x10, 0x1000);
    assert_eq!(only(top, 0x1000).unwrap().end, USER_END);
    let wraps = load(RX, 0, u64::MAX - 0xfff, 0x10, 0x10);
    assert_eq!(
        plan(&elf(ET_DYN, 0, &[wraps], 0x1000), 0x1000),
        Err(ElfError::OutsideUserSpace)
    );
}

#[test]
fn the_entry_must_lie_in_an_executable_segment() {
    let phdrs = [
        load(RX, 0, 0x40_0000, 0x100, 0x100),
        load(RW, 0x1000, 0x40_1000, 0x100, 0x100),
    ];
    let at = |entry| plan(&elf(ET_EXEC, entry, &phdrs, 0x2000), 0).map(|p| p.entry);
    let outside = Err(ElfError::Malformed(
        "entry point outside an executable segment",
    ));
    assert_eq!(at(0x40_00ff), Ok(0x40_00ff));
    assert_eq!(at(0x40_0100), outside);
    assert_eq!(at(0x40_1000), outside);
    assert_eq!(at(0), outside);
    let pie = elf(ET_DYN, u64::MAX, &[load(RX, 0, 0, 0x100, 0x100)], 0x1000);
    assert_eq!(
        plan(&pie, 0x40_0000),
        Err(ElfError::Malformed("entry point"))
    );
}

#[test]
fn without_loadable_segments_there_is_nothing_to_run() {
    let empty = [other(PT_NOTE, 0, 0, 0), load(RX, 0, 0x40_0000, 0, 0)];
    assert_eq!(
        plan(&elf(ET_EXEC, 0x40_0000, &empty, 0x1000), 0),
        Err(ElfError::NoLoadSegments)
    );
}

#[test]
fn segments_are_sorted_and_may_share_a_page_but_not_bytes() {
    let text = load(RX, 0x1000, 0x40_1000, 0x100, 0x100);
    let rodata = load(R, 0x3100, 0x40_1100, 0x80, 0x80);
    let plan_of = |phdrs: &[Ph]| plan(&elf(ET_EXEC, 0x40_1000, phdrs, 0x4000), 0);
    let p = plan_of(&[rodata, text]).unwrap();
    assert_eq!(
        p.segments.iter().map(|s| s.vaddr).collect::<Vec<_>>(),
        vec![0x40_1000, 0x40_1100]
    );
    assert_eq!(p.end, 0x40_2000);
    let overlapping = load(R, 0x30f0, 0x40_10f0, 0x80, 0x80);
    assert_eq!(
        plan_of(&[text, overlapping]),
        Err(ElfError::Malformed("overlapping segments"))
    );
    // Loaded in order, the later segment wins the shared page, as in Linux.
    let mut space = AddressSpace::new();
    for s in &p.segments {
        space
            .insert_image(s.vaddr, s.end(), s.prot, s.backing(1))
            .unwrap();
    }
    let regions: Vec<_> = space.regions().collect();
    assert_eq!(regions.len(), 1);
    assert_eq!(
        (regions[0].prot, regions[0].kind),
        (PROT_READ, RegionKind::Image)
    );
    assert_eq!(regions[0].file_byte(0x40_1000), Some((1, 0x3000)));
}

#[test]
fn errors_read_as_sentences() {
    let all = [
        ElfError::NotElf,
        ElfError::WrongClass,
        ElfError::WrongMachine(183),
        ElfError::NotExecutable(1),
        ElfError::Dynamic,
        ElfError::Malformed("entry point"),
        ElfError::BelowUserSpace(0x1000),
        ElfError::OutsideUserSpace,
        ElfError::NoLoadSegments,
    ];
    let texts: Vec<std::string::String> = all.iter().map(|e| std::format!("{e}")).collect();
    assert!(texts.iter().all(|t| !t.is_empty()));
    assert!(texts[2].contains("183"));
    assert!(texts[5].ends_with("entry point"));
    assert!(texts[6].contains("0x1000"));
    assert!(texts[4].contains("statically"));
}

#[test]
fn hostile_files_never_panic() {
    let good = typical();
    for len in 0..good.len().min(700) {
        let _ = plan(&good[..len], PIE_BASE_FOR_TESTS);
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        let mut b = good.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Mostly the headers, where the interesting fields are.
            let at = (x % 400) as usize;
            b[at] = (x >> 32) as u8;
        }
        if let Ok(p) = plan(&b, PIE_BASE_FOR_TESTS) {
            assert!(p.segments.windows(2).all(|w| w[0].end() <= w[1].vaddr));
            assert!(p
                .segments
                .iter()
                .all(|s| s.vaddr >= USER_START && s.end() <= USER_END));
            assert!(p.end % PAGE_SIZE == 0 && p.end <= USER_END);
        }
    }
}
