use super::*;
use crate::elf::{LoadPlan, Segment};
use alloc::vec;

const TOP: u64 = 0x7fff_ffff_f000;
const RANDOM: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// The stack read back the way a program's start code reads it.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    argv: Vec<Vec<u8>>,
    envp: Vec<Vec<u8>>,
    auxv: Vec<(u64, u64)>,
}

struct Reader<'a> {
    stack: &'a InitialStack,
    top: u64,
}

impl Reader<'_> {
    fn index(&self, addr: u64, len: u64) -> usize {
        assert!(
            addr >= self.stack.sp && addr + len <= self.top,
            "{addr:#x} outside the stack"
        );
        (addr - self.stack.sp) as usize
    }

    fn word(&self, addr: u64) -> u64 {
        let i = self.index(addr, 8);
        u64::from_le_bytes(self.stack.bytes[i..i + 8].try_into().unwrap())
    }

    fn string(&self, addr: u64) -> Vec<u8> {
        let i = self.index(addr, 1);
        let len = self.stack.bytes[i..]
            .iter()
            .position(|&b| b == 0)
            .expect("NUL");
        self.stack.bytes[i..i + len].to_vec()
    }

    fn strings(&self, at: &mut u64) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let p = self.word(*at);
            *at += 8;
            if p == 0 {
                return out;
            }
            out.push(self.string(p));
        }
    }
}

fn decode(stack: &InitialStack, top: u64) -> Decoded {
    assert_eq!(stack.sp % 16, 0, "sp must be 16-byte aligned");
    assert_eq!(stack.sp + stack.bytes.len() as u64, top);
    let r = Reader { stack, top };
    let argc = r.word(stack.sp);
    let mut at = stack.sp + 8;
    let argv = r.strings(&mut at);
    assert_eq!(argv.len() as u64, argc);
    let envp = r.strings(&mut at);
    let mut auxv = Vec::new();
    loop {
        let (key, value) = (r.word(at), r.word(at + 8));
        at += 16;
        auxv.push((key, value));
        if key == AT_NULL {
            break;
        }
    }
    // What the owned entries point at.
    let value = |key| {
        auxv.iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
            .unwrap()
    };
    let random = value(AT_RANDOM);
    assert_eq!(stack.bytes[r.index(random, 16)..][..16], RANDOM);
    assert_eq!(r.string(value(AT_PLATFORM)), b"x86_64");
    assert!(at <= random, "the vector runs into the random bytes");
    Decoded { argv, envp, auxv }
}

fn owned(auxv: &[(u64, u64)]) -> Vec<(u64, u64)> {
    auxv.iter()
        .copied()
        .filter(|(k, _)| ![AT_RANDOM, AT_EXECFN, AT_PLATFORM, AT_NULL].contains(k))
        .collect()
}

#[test]
fn the_stack_decodes_back_for_every_parity_of_counts_and_lengths() {
    let words: Vec<Vec<u8>> = (0..7).map(|i| vec![b'a' + i as u8; 1 + 3 * i]).collect();
    for argc in 0..6 {
        for envc in 0..4 {
            for auxc in 0..3 {
                for top in [TOP, TOP - 8, TOP - 3] {
                    let argv: Vec<&[u8]> = words[..argc].iter().map(|w| w.as_slice()).collect();
                    let envp: Vec<&[u8]> = words[7 - envc..].iter().map(|w| w.as_slice()).collect();
                    let auxv: Vec<(u64, u64)> = (0..auxc)
                        .map(|i| (AT_PAGESZ + i as u64, 100 + i as u64))
                        .collect();
                    let stack = build(top, &argv, &envp, &auxv, &RANDOM, b"/app/run").unwrap();
                    let d = decode(&stack, top);
                    assert_eq!(d.argv, argv);
                    assert_eq!(d.envp, envp);
                    assert_eq!(owned(&d.auxv), auxv);
                    assert_eq!(d.auxv.len(), auxc + 4);
                    assert_eq!(d.auxv.last(), Some(&(AT_NULL, 0)));
                    let execfn = d.auxv.iter().find(|(k, _)| *k == AT_EXECFN).unwrap().1;
                    assert_eq!(Reader { stack: &stack, top }.string(execfn), b"/app/run");
                }
            }
        }
    }
}

#[test]
fn strings_lie_contiguous_below_a_pad_and_above_the_random_bytes() {
    let stack = build(TOP, &[b"one", b"two"], &[b"A=1"], &[], &RANDOM, b"/x").unwrap();
    let d = decode(&stack, TOP);
    let r = Reader {
        stack: &stack,
        top: TOP,
    };
    let argv0 = r.word(stack.sp + 8);
    assert_eq!(r.word(stack.sp + 16), argv0 + 4);
    assert_eq!(r.word(stack.sp + 32), argv0 + 8); // envp[0] right after argv[1]
    let execfn = d.auxv.iter().find(|(k, _)| *k == AT_EXECFN).unwrap().1;
    assert_eq!(execfn + 3, TOP - 16);
    assert!(stack.bytes[stack.bytes.len() - 16..]
        .iter()
        .all(|&b| b == 0));
    let random = d.auxv.iter().find(|(k, _)| *k == AT_RANDOM).unwrap().1;
    assert_eq!(random + 16, argv0);
}

#[test]
fn owned_auxv_entries_given_by_the_caller_are_replaced() {
    let auxv = [
        (AT_PAGESZ, 4096),
        (AT_NULL, 0),
        (AT_RANDOM, 5),
        (AT_PLATFORM, 6),
        (AT_EXECFN, 7),
        (AT_ENTRY, 9),
    ];
    let stack = build(TOP, &[b"p"], &[], &auxv, &RANDOM, b"p").unwrap();
    let d = decode(&stack, TOP);
    assert_eq!(owned(&d.auxv), vec![(AT_PAGESZ, 4096), (AT_ENTRY, 9)]);
    assert_eq!(d.auxv.iter().filter(|(k, _)| *k == AT_RANDOM).count(), 1);
    assert_eq!(d.auxv.len(), 6);
}

#[test]
fn arguments_are_bytes_not_text() {
    let odd: &[u8] = &[0xff, 0xfe, b'=', 0x80];
    let stack = build(TOP, &[odd, b""], &[odd], &[], &RANDOM, b"").unwrap();
    let d = decode(&stack, TOP);
    assert_eq!(d.argv, vec![odd.to_vec(), vec![]]);
    assert_eq!(d.envp, vec![odd.to_vec()]);
}

#[test]
fn nul_bytes_and_oversized_stacks_are_e2big() {
    let e = Err(Errno::E2BIG);
    assert_eq!(build(TOP, &[b"a\0b"], &[], &[], &RANDOM, b"x"), e);
    assert_eq!(build(TOP, &[], &[b"\0"], &[], &RANDOM, b"x"), e);
    assert_eq!(build(TOP, &[], &[], &[], &RANDOM, b"x\0"), e);
    let longest = vec![b'x'; MAX_ARG_STRLEN - 1];
    assert!(build(TOP, &[&longest], &[], &[], &RANDOM, b"x").is_ok());
    let too_long = vec![b'x'; MAX_ARG_STRLEN];
    assert_eq!(build(TOP, &[&too_long], &[], &[], &RANDOM, b"x"), e);
    assert_eq!(build(TOP, &[], &[], &[], &RANDOM, &too_long), e);
    let many: Vec<&[u8]> = vec![&longest; 8];
    assert_eq!(build(TOP, &many, &[], &[], &RANDOM, b"x"), e);
    let empties: Vec<&[u8]> = vec![b""; 200_000];
    assert_eq!(build(TOP, &empties, &[], &[], &RANDOM, b"x"), e);
    assert_eq!(build(TOP, &[], &empties, &[], &RANDOM, b"x"), e);
    let aux = vec![(AT_FLAGS, 0); 100_000];
    assert_eq!(build(TOP, &[], &[], &aux, &RANDOM, b"x"), e);
}

#[test]
fn just_under_the_limit_fits_and_just_over_does_not() {
    let big = vec![b'y'; MAX_ARG_STRLEN - 1];
    let seven: Vec<&[u8]> = vec![&big; 7];
    let stack = build(TOP, &seven, &[], &[], &RANDOM, b"x").unwrap();
    assert!(stack.bytes.len() as u64 <= MAX_STACK_BYTES);
    let rest = (MAX_STACK_BYTES - stack.bytes.len() as u64) as usize;
    let filler = vec![b'z'; rest];
    assert_eq!(
        build(TOP, &seven, &[&filler], &[], &RANDOM, b"x"),
        Err(Errno::E2BIG)
    );
}

#[test]
fn a_top_too_low_is_e2big_not_a_wraparound() {
    for top in [0, 15, 100, 120] {
        assert_eq!(
            build(top, &[b"a"], &[], &[], &RANDOM, b"a"),
            Err(Errno::E2BIG),
            "top {top}"
        );
    }
    assert!(build(4096, &[b"a"], &[], &[], &RANDOM, b"a").is_ok());
}

#[test]
fn the_standard_auxv_describes_the_plan() {
    let plan = LoadPlan {
        entry: 0x40_1000,
        segments: vec![Segment {
            vaddr: 0x40_0000,
            mem_size: 0x2000,
            file_offset: 0,
            file_size: 0x2000,
            prot: 5,
        }],
        phdr: 0x40_0040,
        phent: 56,
        phnum: 7,
        bias: 0,
        end: 0x40_2000,
    };
    let auxv = standard_auxv(&plan, 0x178b_fbff, 2048);
    let value = |key| auxv.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    assert_eq!(value(AT_PHDR), Some(0x40_0040));
    assert_eq!(value(AT_PHENT), Some(56));
    assert_eq!(value(AT_PHNUM), Some(7));
    assert_eq!(value(AT_ENTRY), Some(0x40_1000));
    assert_eq!(value(AT_PAGESZ), Some(4096));
    assert_eq!(value(AT_HWCAP), Some(0x178b_fbff));
    assert_eq!(value(AT_MINSIGSTKSZ), Some(2048));
    assert_eq!(value(AT_CLKTCK), Some(100));
    assert_eq!(value(AT_BASE), Some(0));
    assert_eq!(value(AT_SECURE), Some(0));
    assert_eq!(value(AT_RANDOM), None);
    let stack = build(TOP, &[b"main"], &[], &auxv, &RANDOM, b"main").unwrap();
    assert_eq!(owned(&decode(&stack, TOP).auxv), auxv);
}
