// The operations return lists of ranges, and a list of one is what many
// of them rightly return.
#![allow(clippy::single_range_in_vec_init)]

use super::*;
use alloc::vec;

mod model;

const RW: u32 = PROT_READ | PROT_WRITE;
const ANON: u32 = MAP_PRIVATE | MAP_ANONYMOUS;
const P: u64 = PAGE_SIZE;

fn file(source: u32, offset: u64, size: u64) -> Backing {
    Backing::File {
        source,
        start: 0,
        offset,
        size,
    }
}

#[test]
fn mmap_without_hint_goes_top_down_below_mmap_top() {
    let mut s = AddressSpace::new();
    let (a, r) = s.mmap(0, 1, RW, ANON, Backing::Anonymous).unwrap();
    assert!(r.is_empty());
    assert_eq!(a, MMAP_TOP - P);
    let (b, _) = s
        .mmap(0, 3 * P, PROT_READ, ANON, Backing::Anonymous)
        .unwrap();
    assert_eq!(b, MMAP_TOP - 4 * P);
    let region = s.find(b).unwrap();
    assert_eq!(
        (region.start, region.end, region.kind),
        (b, a, RegionKind::Mmap)
    );
}

#[test]
fn mmap_refuses_bad_arguments_as_linux_does() {
    let mut s = AddressSpace::new();
    let anon = Backing::Anonymous;
    assert_eq!(s.mmap(0, 0, RW, ANON, anon), Err(Errno::EINVAL));
    assert_eq!(s.mmap(0, P, RW, MAP_ANONYMOUS, anon), Err(Errno::EINVAL));
    assert_eq!(
        s.mmap(0, P, RW, 3 | MAP_ANONYMOUS, anon),
        Err(Errno::EINVAL)
    );
    assert_eq!(s.mmap(0, u64::MAX, RW, ANON, anon), Err(Errno::ENOMEM));
    assert_eq!(s.mmap(0, 1 << 62, RW, ANON, anon), Err(Errno::ENOMEM));
    let fixed = ANON | MAP_FIXED;
    assert_eq!(
        s.mmap(USER_START + 1, P, RW, fixed, anon),
        Err(Errno::EINVAL)
    );
    assert_eq!(s.mmap(0, P, RW, fixed, anon), Err(Errno::ENOMEM));
    assert_eq!(
        s.mmap(USER_START - P, 2 * P, RW, fixed, anon),
        Err(Errno::ENOMEM)
    );
    assert_eq!(s.mmap(USER_END, P, RW, fixed, anon), Err(Errno::ENOMEM));
    assert_eq!(
        s.mmap(USER_END - P, 2 * P, RW, fixed, anon),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        s.mmap(page_down(u64::MAX), 2 * P, RW, fixed, anon),
        Err(Errno::ENOMEM)
    );
    let noreplace = ANON | MAP_FIXED_NOREPLACE;
    assert_eq!(
        s.mmap(USER_START + 8, P, RW, noreplace, anon),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        s.mmap(0, P, RW, MAP_PRIVATE, file(1, 100, P)),
        Err(Errno::EINVAL)
    );
    let far = page_down(u64::MAX);
    assert_eq!(
        s.mmap(0, 2 * P, RW, MAP_PRIVATE, file(1, far, P)),
        Err(Errno::EOVERFLOW)
    );
    assert_eq!(s.regions().count(), 0);
}

#[test]
fn fixed_noreplace_fails_on_any_overlap_and_works_when_free() {
    let mut s = AddressSpace::new();
    let at = USER_START + 16 * P;
    s.mmap(at, 2 * P, RW, ANON | MAP_FIXED, Backing::Anonymous)
        .unwrap();
    let nr = ANON | MAP_FIXED_NOREPLACE;
    assert_eq!(
        s.mmap(at - P, 2 * P, RW, nr, Backing::Anonymous),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        s.mmap(at + P, 8 * P, RW, nr, Backing::Anonymous),
        Err(Errno::EEXIST)
    );
    assert_eq!(
        s.mmap(at + 2 * P, P, RW, nr, Backing::Anonymous).unwrap(),
        (at + 2 * P, vec![])
    );
}

#[test]
fn a_free_hint_is_used_rounded_down_and_a_taken_one_is_not() {
    let mut s = AddressSpace::new();
    let hint = USER_START + 0x10_0000;
    assert_eq!(
        s.mmap(hint + 5, P, RW, ANON, Backing::Anonymous).unwrap().0,
        hint
    );
    let (again, replaced) = s.mmap(hint, P, RW, ANON, Backing::Anonymous).unwrap();
    assert!(replaced.is_empty());
    assert_eq!(again, MMAP_TOP - P);
    assert_eq!(s.find(hint).unwrap().end, hint + P);
    // Outside user space, the hint is only a hint.
    assert_eq!(
        s.mmap(P, P, RW, ANON, Backing::Anonymous).unwrap().0,
        MMAP_TOP - 2 * P
    );
    let top = s
        .mmap(USER_END - P, 2 * P, RW, ANON, Backing::Anonymous)
        .unwrap()
        .0;
    assert_eq!(top, MMAP_TOP - 4 * P);
}

#[test]
fn map_fixed_replaces_and_reports_the_replaced_pages() {
    let mut s = AddressSpace::new();
    let a = USER_START + 32 * P;
    s.mmap(a, 4 * P, PROT_READ, ANON | MAP_FIXED, Backing::Anonymous)
        .unwrap();
    s.mmap(
        a + 6 * P,
        2 * P,
        PROT_READ,
        ANON | MAP_FIXED,
        Backing::Anonymous,
    )
    .unwrap();
    let (at, replaced) = s
        .mmap(
            a + 2 * P,
            5 * P,
            RW,
            MAP_PRIVATE | MAP_FIXED,
            file(9, 8 * P, 3 * P),
        )
        .unwrap();
    assert_eq!(at, a + 2 * P);
    assert_eq!(replaced, vec![a + 2 * P..a + 4 * P, a + 6 * P..a + 7 * P]);
    let spans: Vec<_> = s.regions().map(|r| (r.start, r.end, r.prot)).collect();
    assert_eq!(
        spans,
        vec![
            (a, a + 2 * P, PROT_READ),
            (a + 2 * P, a + 7 * P, RW),
            (a + 7 * P, a + 8 * P, PROT_READ)
        ]
    );
    // The file's start is the mapping's address, whatever the caller gave.
    assert_eq!(
        s.find(a + 2 * P).unwrap().file_byte(a + 2 * P + 7),
        Some((9, 8 * P + 7))
    );
    assert_eq!(s.find(a + 5 * P).unwrap().file_byte(a + 5 * P), None);
}

#[test]
fn munmap_splits_and_both_halves_keep_their_file_bytes() {
    let mut s = AddressSpace::new();
    let (a, _) = s
        .mmap(0, 6 * P, PROT_READ, MAP_PRIVATE, file(3, 2 * P, 5 * P + 10))
        .unwrap();
    assert_eq!(
        s.munmap(a + 2 * P, 2 * P).unwrap(),
        vec![a + 2 * P..a + 4 * P]
    );
    let left = s.find(a).unwrap().clone();
    let right = s.find(a + 4 * P).unwrap().clone();
    assert_eq!((left.start, left.end), (a, a + 2 * P));
    assert_eq!((right.start, right.end), (a + 4 * P, a + 6 * P));
    assert_eq!(left.file_byte(a + 1), Some((3, 2 * P + 1)));
    assert_eq!(right.file_byte(a + 4 * P), Some((3, 6 * P)));
    assert_eq!(right.file_byte(a + 5 * P + 9), Some((3, 7 * P + 9)));
    assert_eq!(right.file_byte(a + 5 * P + 10), None);
    let tail = right.page_source(a + 5 * P).unwrap();
    assert_eq!(
        tail,
        PageSource {
            source: 3,
            file_offset: 7 * P,
            page_offset: 0,
            len: 10
        }
    );
    assert!(s.find(a + 3 * P).is_none());
    // Nothing there: not an error, nothing released.
    assert_eq!(s.munmap(a + 2 * P, P).unwrap(), vec![]);
}

#[test]
fn munmap_refuses_bad_arguments() {
    let mut s = AddressSpace::new();
    assert_eq!(s.munmap(USER_START + 1, P), Err(Errno::EINVAL));
    assert_eq!(s.munmap(USER_START, 0), Err(Errno::EINVAL));
    assert_eq!(s.munmap(USER_START, u64::MAX), Err(Errno::EINVAL));
    assert_eq!(s.munmap(page_down(u64::MAX), P), Err(Errno::EINVAL));
    assert_eq!(s.munmap(USER_END - P, 2 * P), Err(Errno::EINVAL));
    assert_eq!(s.munmap(0, P).unwrap(), vec![]);
}

#[test]
fn mprotect_splits_reports_only_changes_and_merges_back() {
    let mut s = AddressSpace::new();
    let (a, _) = s.mmap(0, 4 * P, RW, ANON, Backing::Anonymous).unwrap();
    assert_eq!(
        s.mprotect(a + P, P + 1, PROT_READ).unwrap(),
        vec![(a + P..a + 3 * P, PROT_READ)]
    );
    assert_eq!(s.regions().count(), 3);
    // Already read-only in the middle: only the edges change.
    let changed = s.mprotect(a, 4 * P, PROT_READ).unwrap();
    assert_eq!(
        changed,
        vec![(a..a + P, PROT_READ), (a + 3 * P..a + 4 * P, PROT_READ)]
    );
    assert_eq!(s.regions().count(), 1);
    assert_eq!(s.mprotect(a, 4 * P, PROT_READ).unwrap(), vec![]);
    assert_eq!(s.mprotect(a, 0, RW).unwrap(), vec![]);
}

#[test]
fn mprotect_refuses_holes_unaligned_and_unknown_bits_changing_nothing() {
    let mut s = AddressSpace::new();
    let (a, _) = s.mmap(0, 4 * P, RW, ANON, Backing::Anonymous).unwrap();
    s.munmap(a + 2 * P, P).unwrap();
    let before = s.clone();
    assert_eq!(s.mprotect(a, 4 * P, PROT_READ), Err(Errno::ENOMEM));
    assert_eq!(s.mprotect(a - P, 2 * P, PROT_READ), Err(Errno::ENOMEM));
    assert_eq!(s.mprotect(a + 1, P, PROT_READ), Err(Errno::EINVAL));
    assert_eq!(s.mprotect(a, P, 8), Err(Errno::EINVAL));
    assert_eq!(s.mprotect(a, P, 0x0100_0000), Err(Errno::EINVAL));
    assert_eq!(s.mprotect(a, u64::MAX, PROT_READ), Err(Errno::ENOMEM));
    assert_eq!(s, before);
}

#[test]
fn mprotect_keeps_file_backings_valid() {
    let mut s = AddressSpace::new();
    let (a, _) = s
        .mmap(0, 3 * P, PROT_READ, MAP_PRIVATE, file(4, 0, 3 * P))
        .unwrap();
    s.mprotect(a + P, P, RW).unwrap();
    for page in 0..3 {
        let addr = a + page * P + 5;
        assert_eq!(
            s.find(addr).unwrap().file_byte(addr),
            Some((4, page * P + 5))
        );
    }
    s.mprotect(a + P, P, PROT_READ).unwrap();
    assert_eq!(s.regions().count(), 1);
}

#[test]
fn brk_grows_shrinks_and_refuses_as_linux_does() {
    let mut s = AddressSpace::new();
    let base = USER_START + 16 * P;
    s.set_brk_start(base - 100);
    assert_eq!((s.brk_start(), s.current_brk()), (base, base));
    assert_eq!(s.brk(0), (base, vec![]));
    assert_eq!(s.brk(base - 1), (base, vec![]));
    assert_eq!(s.brk(base + 10), (base + 10, vec![]));
    let heap = s.find(base).unwrap().clone();
    assert_eq!(
        (heap.start, heap.end, heap.prot, heap.kind),
        (base, base + P, RW, RegionKind::Heap)
    );
    assert_eq!(s.brk(base + P), (base + P, vec![]));
    assert_eq!(s.brk(base + 3 * P + 1), (base + 3 * P + 1, vec![]));
    assert_eq!(s.regions().count(), 1);
    assert_eq!(
        s.brk(base + P - 1),
        (base + P - 1, vec![base + P..base + 4 * P])
    );
    assert_eq!(s.brk(base), (base, vec![base..base + P]));
    assert_eq!(s.regions().count(), 0);
    // Growing into a mapping is refused; the old break is returned.
    s.mmap(base + 4 * P, P, RW, ANON | MAP_FIXED, Backing::Anonymous)
        .unwrap();
    assert_eq!(s.brk(base + 4 * P), (base + 4 * P, vec![]));
    assert_eq!(s.brk(base + 4 * P + 1), (base + 4 * P, vec![]));
    assert_eq!(s.brk(USER_END + 1), (base + 4 * P, vec![]));
    assert_eq!(s.brk(u64::MAX), (base + 4 * P, vec![]));
}

#[test]
fn brk_without_a_start_refuses_everything() {
    let mut s = AddressSpace::new();
    assert_eq!(s.brk(USER_START + P), (0, vec![]));
    assert_eq!(s.regions().count(), 0);
}

#[test]
fn top_down_allocation_stays_above_the_heap_and_fails_when_full() {
    let mut s = AddressSpace::new();
    s.mmap_top = USER_START + 8 * P;
    s.set_brk_start(USER_START + 2 * P);
    s.brk(USER_START + 3 * P);
    assert_eq!(
        s.mmap(0, 5 * P, RW, ANON, Backing::Anonymous).unwrap().0,
        USER_START + 3 * P
    );
    assert_eq!(
        s.mmap(0, P, RW, ANON, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
    s.munmap(USER_START + 4 * P, 2 * P).unwrap();
    assert_eq!(
        s.mmap(0, 3 * P, RW, ANON, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        s.mmap(0, 2 * P, RW, ANON, Backing::Anonymous).unwrap().0,
        USER_START + 4 * P
    );
}

#[test]
fn image_segments_sharing_a_page_let_the_later_one_win() {
    let mut s = AddressSpace::new();
    let text = Backing::File {
        source: 1,
        start: 0x40_1000,
        offset: 0x1000,
        size: 0x1100,
    };
    let data = Backing::File {
        source: 1,
        start: 0x40_2100,
        offset: 0x3100,
        size: 0x20,
    };
    s.insert_image(0x40_1000, 0x40_2100, PROT_READ | PROT_EXEC, text)
        .unwrap();
    s.insert_image(0x40_2100, 0x40_4000, RW, data).unwrap();
    let spans: Vec<_> = s
        .regions()
        .map(|r| (r.start, r.end, r.prot, r.kind))
        .collect();
    assert_eq!(
        spans,
        vec![
            (
                0x40_1000,
                0x40_2000,
                PROT_READ | PROT_EXEC,
                RegionKind::Image
            ),
            (0x40_2000, 0x40_4000, RW, RegionKind::Image),
        ]
    );
    // The shared page is the later segment's file page, as Linux maps it.
    let shared = s.find(0x40_2000).unwrap();
    let page = shared.page_source(0x40_2000).unwrap();
    assert_eq!(
        page,
        PageSource {
            source: 1,
            file_offset: 0x3000,
            page_offset: 0,
            len: 0x120
        }
    );
    assert_eq!(shared.page_source(0x40_3000), None);
    assert_eq!(
        s.insert_image(5, 5, 0, Backing::Anonymous),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        s.insert_image(0x10_0000, 0x50_0000, 0, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
    assert_eq!(
        s.insert_image(USER_END - 1, u64::MAX, 0, Backing::Anonymous),
        Err(Errno::ENOMEM)
    );
}

#[test]
fn a_segment_starting_mid_page_reads_the_file_before_it_from_offset_zero_up() {
    let r = Region {
        start: 0x40_0000,
        end: 0x40_2000,
        prot: PROT_READ,
        backing: Backing::File {
            source: 2,
            start: 0x40_0040,
            offset: 0x40,
            size: 0x1000,
        },
        kind: RegionKind::Image,
    };
    assert_eq!(r.file_byte(0x40_0000), Some((2, 0)));
    assert_eq!(
        r.page_source(0x40_0000),
        Some(PageSource {
            source: 2,
            file_offset: 0,
            page_offset: 0,
            len: 4096
        })
    );
    assert_eq!(
        r.page_source(0x40_1000),
        Some(PageSource {
            source: 2,
            file_offset: 0x1000,
            page_offset: 0,
            len: 0x40
        })
    );
    // Before offset 0 there is nothing to read: zero.
    let r = Region {
        backing: Backing::File {
            source: 2,
            start: 0x40_0100,
            offset: 0x40,
            size: 8,
        },
        ..r
    };
    assert_eq!(r.file_byte(0x40_00bf), None);
    assert_eq!(
        r.page_source(0x40_0000),
        Some(PageSource {
            source: 2,
            file_offset: 0,
            page_offset: 0xc0,
            len: 0x48
        })
    );
    assert_eq!(r.page_source(0x40_0001), None);
    assert_eq!(r.page_source(0x40_2000), None);
    assert_eq!(r.page_source(0x3f_f000), None);
    assert_eq!(r.file_byte(0x40_2000), None);
}

#[test]
fn hostile_backings_read_zero_instead_of_overflowing() {
    let r = Region {
        start: page_down(u64::MAX) - P,
        end: page_down(u64::MAX),
        prot: PROT_READ,
        backing: Backing::File {
            source: 1,
            start: 0,
            offset: u64::MAX,
            size: u64::MAX,
        },
        kind: RegionKind::Mmap,
    };
    assert_eq!(r.file_byte(r.start), None);
    assert_eq!(r.page_source(r.start), None);
    let anon = Region {
        backing: Backing::Anonymous,
        ..r
    };
    assert_eq!(anon.page_source(anon.start), None);
}

#[test]
fn check_wants_every_byte_mapped_with_the_protection() {
    let mut s = AddressSpace::new();
    let a = USER_START + 64 * P;
    s.mmap(a, P, RW, ANON | MAP_FIXED, Backing::Anonymous)
        .unwrap();
    s.mmap(a + P, P, PROT_READ, ANON | MAP_FIXED, Backing::Anonymous)
        .unwrap();
    s.mmap(
        a + 2 * P,
        P,
        PROT_WRITE,
        ANON | MAP_FIXED,
        Backing::Anonymous,
    )
    .unwrap();
    assert_eq!(s.check(a, 2 * P, false), Ok(()));
    assert_eq!(s.check(a, P, true), Ok(()));
    assert_eq!(s.check(a + P - 1, 2, true), Err(Errno::EFAULT));
    assert_eq!(s.check(a + 2 * P, 1, false), Err(Errno::EFAULT));
    assert_eq!(s.check(a - 1, 2, false), Err(Errno::EFAULT));
    assert_eq!(s.check(a + 3 * P - 1, 2, false), Err(Errno::EFAULT));
    assert_eq!(s.check(a, u64::MAX, false), Err(Errno::EFAULT));
    assert_eq!(s.check(u64::MAX, 1, false), Err(Errno::EFAULT));
    assert_eq!(s.check(0, 0, true), Ok(()));
    assert_eq!(s.check(u64::MAX, 0, true), Ok(()));
}

#[test]
fn the_stack_is_inserted_once() {
    let mut s = AddressSpace::new();
    s.insert_stack().unwrap();
    let stack = s.find(STACK_TOP - 1).unwrap();
    assert_eq!(
        (stack.start, stack.end, stack.prot),
        (STACK_TOP - STACK_SIZE, STACK_TOP, RW)
    );
    assert_eq!(stack.kind, RegionKind::Stack);
    assert_eq!(s.insert_stack(), Err(Errno::EEXIST));
    assert_eq!(s.check(STACK_TOP - 8, 8, true), Ok(()));
    assert_eq!(s.check(STACK_TOP - 8, 9, true), Err(Errno::EFAULT));
}

#[test]
fn random_operations_agree_with_a_page_by_page_model() {
    for seed in [1, 2, 3, 0xdead_beef, 0x1234_5678_9abc, 77, 4242, 31337] {
        model::run(seed, 1500);
    }
}
