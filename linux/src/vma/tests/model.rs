//! A naive page-by-page model of the address space, and a random driver
//! that checks [`AddressSpace`] against it after every operation.

use super::super::*;
use alloc::collections::BTreeSet;
use alloc::format;
use alloc::string::String;

const P: u64 = PAGE_SIZE;
/// The window most random addresses fall in, in pages from `USER_START`.
const WINDOW: u64 = 200;

/// A tiny xorshift generator: fixed seeds, so that a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

type Page = (u32, Backing, RegionKind);

struct Model {
    pages: BTreeMap<u64, Page>,
    brk_start: u64,
    brk: u64,
    mmap_top: u64,
}

impl Model {
    fn free(&self, start: u64, end: u64) -> bool {
        self.pages.range(start..end).next().is_none()
    }

    fn remove(&mut self, start: u64, end: u64) -> BTreeSet<u64> {
        let gone: BTreeSet<u64> = self.pages.range(start..end).map(|(p, _)| *p).collect();
        for p in &gone {
            self.pages.remove(p);
        }
        gone
    }

    fn set(&mut self, start: u64, end: u64, page: Page) {
        let mut p = start;
        while p < end {
            self.pages.insert(p, page);
            p += P;
        }
    }

    fn in_user(start: u64, end: u64) -> bool {
        USER_START <= start && start < end && end <= USER_END
    }

    fn mmap(
        &mut self,
        addr: u64,
        len: u64,
        prot: u32,
        flags: u32,
        backing: Backing,
    ) -> SysResult<(u64, BTreeSet<u64>)> {
        let kind = flags & 0xf;
        if (kind != MAP_SHARED && kind != MAP_PRIVATE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        if let Backing::File { offset, .. } = backing {
            if !page_aligned(offset) {
                return Err(Errno::EINVAL);
            }
            if offset.checked_add(len).is_none() {
                return Err(Errno::EOVERFLOW);
            }
        }
        let (start, replaced) = if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE) != 0 {
            if !page_aligned(addr) {
                return Err(Errno::EINVAL);
            }
            let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
            if !Self::in_user(addr, end) {
                return Err(Errno::ENOMEM);
            }
            if flags & MAP_FIXED_NOREPLACE != 0 && !self.free(addr, end) {
                return Err(Errno::EEXIST);
            }
            (addr, self.remove(addr, end))
        } else {
            (self.find_free(addr, len)?, BTreeSet::new())
        };
        let backing = match backing {
            Backing::File {
                source,
                offset,
                size,
                ..
            } => Backing::File {
                source,
                start,
                offset,
                size,
            },
            Backing::Anonymous => Backing::Anonymous,
        };
        self.set(start, start + len, (prot & 7, backing, RegionKind::Mmap));
        Ok((start, replaced))
    }

    fn find_free(&self, hint: u64, len: u64) -> SysResult<u64> {
        let hint = page_down(hint);
        if hint != 0 {
            if let Some(end) = hint.checked_add(len) {
                if Self::in_user(hint, end) && self.free(hint, end) {
                    return Ok(hint);
                }
            }
        }
        let floor = USER_START
            .max(self.brk_start)
            .max(page_up(self.brk).unwrap());
        if len > self.mmap_top.saturating_sub(floor) {
            return Err(Errno::ENOMEM);
        }
        let mut a = self.mmap_top - len;
        loop {
            if self.free(a, a + len) {
                return Ok(a);
            }
            if a < floor + P {
                return Err(Errno::ENOMEM);
            }
            a -= P;
        }
    }

    fn munmap(&mut self, addr: u64, len: u64) -> SysResult<BTreeSet<u64>> {
        if !page_aligned(addr) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let end = page_up(len)
            .and_then(|l| addr.checked_add(l))
            .ok_or(Errno::EINVAL)?;
        if end > USER_END {
            return Err(Errno::EINVAL);
        }
        Ok(self.remove(addr, end))
    }

    fn mprotect(&mut self, addr: u64, len: u64, prot: u32) -> SysResult<BTreeSet<u64>> {
        if !page_aligned(addr) || prot & !7 != 0 {
            return Err(Errno::EINVAL);
        }
        if len == 0 {
            return Ok(BTreeSet::new());
        }
        let end = page_up(len)
            .and_then(|l| addr.checked_add(l))
            .ok_or(Errno::ENOMEM)?;
        if self.pages.range(addr..end).count() as u64 != (end - addr) / P {
            return Err(Errno::ENOMEM);
        }
        let mut changed = BTreeSet::new();
        for (p, page) in self.pages.range_mut(addr..end) {
            if page.0 != prot {
                page.0 = prot;
                changed.insert(*p);
            }
        }
        Ok(changed)
    }

    fn brk(&mut self, requested: u64) -> (u64, BTreeSet<u64>) {
        let old = self.brk;
        let refuse = (old, BTreeSet::new());
        if requested < self.brk_start {
            return refuse;
        }
        let (Some(old_end), Some(new_end)) = (page_up(old), page_up(requested)) else {
            return refuse;
        };
        if new_end > USER_END {
            return refuse;
        }
        let mut released = BTreeSet::new();
        if new_end < old_end {
            released = self.remove(new_end, old_end);
        } else if new_end > old_end {
            if !Self::in_user(old_end, new_end) || !self.free(old_end, new_end) {
                return refuse;
            }
            self.set(
                old_end,
                new_end,
                (PROT_READ | PROT_WRITE, Backing::Anonymous, RegionKind::Heap),
            );
        }
        self.brk = requested;
        (requested, released)
    }

    fn check(&self, addr: u64, len: u64, write: bool) -> SysResult<()> {
        if len == 0 {
            return Ok(());
        }
        let last = addr.checked_add(len - 1).ok_or(Errno::EFAULT)?;
        let need = if write { 3 } else { 1 };
        let mut p = page_down(addr);
        while p <= page_down(last) {
            match self.pages.get(&p) {
                Some(page) if page.0 & need == need => {}
                _ => return Err(Errno::EFAULT),
            }
            p += P;
        }
        Ok(())
    }
}

fn pages_of(ranges: &[Range<u64>], what: &str) -> BTreeSet<u64> {
    let mut set = BTreeSet::new();
    let mut last_end = 0;
    for r in ranges {
        assert!(r.start < r.end, "{what}: empty range {r:?}");
        assert!(
            page_aligned(r.start) && page_aligned(r.end),
            "{what}: unaligned {r:?}"
        );
        assert!(
            r.start >= last_end,
            "{what}: unsorted or overlapping {ranges:?}"
        );
        last_end = r.end;
        let mut p = r.start;
        while p < r.end {
            set.insert(p);
            p += P;
        }
    }
    set
}

fn agree(space: &AddressSpace, model: &Model, what: &str) {
    assert_eq!(space.brk, model.brk, "{what}: break");
    let mut end = 0;
    let mut count = 0;
    for (key, r) in &space.regions {
        assert_eq!(*key, r.start, "{what}: key");
        assert!(r.start < r.end, "{what}: empty {r:?}");
        assert!(
            page_aligned(r.start) && page_aligned(r.end),
            "{what}: unaligned {r:?}"
        );
        assert!(r.start >= end, "{what}: overlap at {r:?}");
        assert!(
            USER_START <= r.start && r.end <= USER_END,
            "{what}: outside {r:?}"
        );
        end = r.end;
        let mut p = r.start;
        while p < r.end {
            let want = model.pages.get(&p);
            assert_eq!(
                Some(&(r.prot, r.backing, r.kind)),
                want,
                "{what}: page {p:#x}"
            );
            count += 1;
            p += P;
        }
    }
    assert_eq!(count, model.pages.len(), "{what}: page count");
}

fn addr(rng: &mut Rng) -> u64 {
    match rng.below(20) {
        0 => [
            0,
            1,
            P,
            USER_START - P,
            USER_END - P,
            USER_END,
            page_down(u64::MAX),
            u64::MAX,
        ][rng.below(8) as usize],
        1 => USER_START + rng.below(WINDOW) * P + 1 + rng.below(P - 1),
        2 => MMAP_TOP - rng.below(8) * P,
        _ => USER_START + rng.below(WINDOW) * P,
    }
}

fn len(rng: &mut Rng) -> u64 {
    match rng.below(20) {
        0 => [0, u64::MAX, 1 << 48, page_down(u64::MAX), u64::MAX - P][rng.below(5) as usize],
        1 => (1 + rng.below(8)) * P - rng.below(P),
        _ => (1 + rng.below(12)) * P,
    }
}

fn backing(rng: &mut Rng) -> Backing {
    if rng.chance(50) {
        return Backing::Anonymous;
    }
    let offset = match rng.below(10) {
        0 => 1 + rng.below(P - 1),
        1 => page_down(u64::MAX) - rng.below(4) * P,
        _ => rng.below(16) * P,
    };
    Backing::File {
        source: 1 + rng.below(3) as u32,
        start: rng.next(),
        offset,
        size: rng.below(20 * P),
    }
}

/// Runs `steps` random operations from `seed`, checking after each.
pub(super) fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut space = AddressSpace::new();
    space.mmap_top = USER_START + (WINDOW - 40) * P;
    let mut model = Model {
        pages: BTreeMap::new(),
        brk_start: 0,
        brk: 0,
        mmap_top: space.mmap_top,
    };
    // A program of two segments sharing a page, and its break above them.
    let text = Backing::File {
        source: 7,
        start: USER_START + 0x10,
        offset: 0x10,
        size: 0x2000,
    };
    let data = Backing::File {
        source: 7,
        start: USER_START + 0x2100,
        offset: 0x3100,
        size: 0x100,
    };
    space
        .insert_image(
            USER_START + 0x10,
            USER_START + 0x2100,
            PROT_READ | PROT_EXEC,
            text,
        )
        .unwrap();
    space
        .insert_image(
            USER_START + 0x2100,
            USER_START + 0x4000,
            PROT_READ | PROT_WRITE,
            data,
        )
        .unwrap();
    model.set(
        USER_START,
        USER_START + 2 * P,
        (PROT_READ | PROT_EXEC, text, RegionKind::Image),
    );
    model.set(
        USER_START + 2 * P,
        USER_START + 4 * P,
        (PROT_READ | PROT_WRITE, data, RegionKind::Image),
    );
    space.set_brk_start(USER_START + 8 * P - 3);
    model.brk_start = USER_START + 8 * P;
    model.brk = model.brk_start;
    agree(&space, &model, "start");

    // How often each interesting outcome happened: a driver that only ever
    // hits errors would check nothing.
    let mut seen = [0usize; 6];
    for step in 0..steps {
        let op = rng.below(10);
        let what: String;
        match op {
            0..=3 => {
                let (a, l, prot) = (addr(&mut rng), len(&mut rng), rng.below(8) as u32);
                let mut flags = match rng.below(20) {
                    0 => 0,
                    1 => 3,
                    2..=5 => MAP_SHARED,
                    _ => MAP_PRIVATE,
                };
                if rng.chance(45) {
                    flags |= MAP_FIXED;
                } else if rng.chance(15) {
                    flags |= MAP_FIXED_NOREPLACE;
                }
                let b = backing(&mut rng);
                if b == Backing::Anonymous {
                    flags |= MAP_ANONYMOUS;
                }
                what = format!(
                    "seed {seed} step {step}: mmap({a:#x}, {l:#x}, {prot}, {flags:#x}, {b:?})"
                );
                let got = space.mmap(a, l, prot, flags, b);
                let want = model.mmap(a, l, prot, flags, b);
                match (got, want) {
                    (Ok((ga, gr)), Ok((wa, wr))) => {
                        assert_eq!(ga, wa, "{what}: address");
                        assert_eq!(pages_of(&gr, &what), wr, "{what}: replaced");
                        seen[0] += 1;
                        seen[1] += usize::from(!wr.is_empty());
                    }
                    (got, want) => assert_eq!(got.map(|_| ()), want.map(|_| ()), "{what}"),
                }
            }
            4 | 5 => {
                let (a, l) = (addr(&mut rng), len(&mut rng));
                what = format!("seed {seed} step {step}: munmap({a:#x}, {l:#x})");
                let got = space.munmap(a, l).map(|r| pages_of(&r, &what));
                assert_eq!(got, model.munmap(a, l), "{what}");
                seen[2] += usize::from(got.is_ok_and(|g| !g.is_empty()));
            }
            6 | 7 => {
                let (a, l) = (addr(&mut rng), len(&mut rng));
                let prot = if rng.chance(5) {
                    8
                } else {
                    rng.below(8) as u32
                };
                what = format!("seed {seed} step {step}: mprotect({a:#x}, {l:#x}, {prot})");
                let got = space.mprotect(a, l, prot).map(|r| {
                    assert!(r.iter().all(|(_, p)| *p == prot), "{what}: prot");
                    let ranges: Vec<Range<u64>> = r.into_iter().map(|(r, _)| r).collect();
                    pages_of(&ranges, &what)
                });
                assert_eq!(got, model.mprotect(a, l, prot), "{what}");
                seen[3] += usize::from(got.is_ok_and(|g| !g.is_empty()));
            }
            8 => {
                let req = match rng.below(8) {
                    0 => [0, u64::MAX, USER_END, model.brk_start - 1][rng.below(4) as usize],
                    _ => model.brk_start + rng.below(24 * P),
                };
                what = format!("seed {seed} step {step}: brk({req:#x})");
                let (got, released) = space.brk(req);
                let (want, want_released) = model.brk(req);
                assert_eq!(got, want, "{what}");
                assert_eq!(
                    pages_of(&released, &what),
                    want_released,
                    "{what}: released"
                );
                seen[4] += usize::from(!want_released.is_empty());
                seen[5] += usize::from(got == req && req > model.brk_start);
            }
            _ => {
                let (a, l, w) = (addr(&mut rng), rng.below(3 * P), rng.chance(50));
                what = format!("seed {seed} step {step}: check({a:#x}, {l:#x}, {w})");
                assert_eq!(space.check(a, l, w), model.check(a, l, w), "{what}");
                let found = space.find(a).map(|r| (r.prot, r.backing, r.kind));
                assert_eq!(
                    found.as_ref(),
                    model.pages.get(&page_down(a)),
                    "{what}: find"
                );
            }
        }
        agree(&space, &model, &what);
    }
    assert!(
        seen.iter().all(|&n| n >= steps / 200),
        "seed {seed}: too few of some outcome: {seen:?}"
    );
}
