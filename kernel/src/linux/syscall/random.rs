//! Randomness: a ChaCha20 generator keyed per VM from the host's seed
//! (in the environment file, which only this VM reads), RDRAND where the CPU has it, and
//! the TSC, so two VMs never see the same bytes; getrandom, AT_RANDOM and
//! /dev/urandom all draw from it.

use mayfly_linux::errno::{Errno, SysResult};

use super::Args;
use crate::arch;
use crate::linux::process::Process;

/// A ChaCha20 keystream.
pub struct Generator {
    key: [u32; 8],
    counter: u64,
    block: [u8; 64],
    used: usize,
}

fn quarter(s: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(16);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(12);
    s[a] = s[a].wrapping_add(s[b]);
    s[d] = (s[d] ^ s[a]).rotate_left(8);
    s[c] = s[c].wrapping_add(s[d]);
    s[b] = (s[b] ^ s[c]).rotate_left(7);
}

fn rdrand() -> Option<u64> {
    if arch::cpuid(1).ecx & (1 << 30) == 0 {
        return None;
    }
    for _ in 0..10 {
        let value: u64;
        let ok: u8;
        // SAFETY: RDRAND is present (CPUID.1:ECX.30); it only writes the
        // register and the carry flag.
        unsafe {
            core::arch::asm!("rdrand {v}", "setc {ok}", v = out(reg) value, ok = out(reg_byte) ok,
                options(nomem, nostack));
        }
        if ok == 1 {
            return Some(value);
        }
    }
    None
}

impl Generator {
    /// Keys a generator from the host's seed (if any), RDRAND (if any)
    /// and the TSC.
    pub fn new(seed: Option<[u8; 32]>) -> Generator {
        let mut key = [0u32; 8];
        if let Some(seed) = &seed {
            for (i, b) in seed.iter().enumerate() {
                key[(i / 4) % 8] ^= u32::from(*b) << ((i % 4) * 8);
            }
        }
        for (i, word) in key.iter_mut().enumerate() {
            let extra = rdrand().unwrap_or(0) ^ arch::rdtsc().rotate_left(i as u32 * 7);
            *word ^= extra as u32 ^ (extra >> 32) as u32;
        }
        let mut generator = Generator {
            key,
            counter: 0,
            block: [0; 64],
            used: 64,
        };
        // Ratchet: the key is replaced by output, so bytes given out cannot
        // lead back to the seed.
        let mut fresh = [0u8; 32];
        generator.fill(&mut fresh);
        for (i, word) in generator.key.iter_mut().enumerate() {
            *word = u32::from_le_bytes([
                fresh[i * 4],
                fresh[i * 4 + 1],
                fresh[i * 4 + 2],
                fresh[i * 4 + 3],
            ]);
        }
        generator.used = 64;
        generator
    }

    fn refill(&mut self) {
        let mut s = [0u32; 16];
        s[..4].copy_from_slice(&[0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574]);
        s[4..12].copy_from_slice(&self.key);
        s[12] = self.counter as u32;
        s[13] = (self.counter >> 32) as u32;
        let initial = s;
        for _ in 0..10 {
            quarter(&mut s, 0, 4, 8, 12);
            quarter(&mut s, 1, 5, 9, 13);
            quarter(&mut s, 2, 6, 10, 14);
            quarter(&mut s, 3, 7, 11, 15);
            quarter(&mut s, 0, 5, 10, 15);
            quarter(&mut s, 1, 6, 11, 12);
            quarter(&mut s, 2, 7, 8, 13);
            quarter(&mut s, 3, 4, 9, 14);
        }
        for (i, word) in s.iter().enumerate() {
            self.block[i * 4..i * 4 + 4]
                .copy_from_slice(&word.wrapping_add(initial[i]).to_le_bytes());
        }
        self.counter += 1;
        self.used = 0;
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            if self.used == 64 {
                self.refill();
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }
}

/// getrandom: never blocks (the generator is seeded before the program
/// starts).
pub fn getrandom(p: &mut Process, a: &Args) -> SysResult {
    const GRND_NONBLOCK: u64 = 1;
    const GRND_RANDOM: u64 = 2;
    const GRND_INSECURE: u64 = 4;
    if a[2] & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0 {
        return Err(Errno::EINVAL);
    }
    let len = (a[1] as usize).min(1 << 25);
    let mut done = 0;
    let mut chunk = [0u8; 256];
    while done < len {
        let n = (len - done).min(chunk.len());
        p.random.fill(&mut chunk[..n]);
        p.write_user(a[0] + done as u64, &chunk[..n])?;
        done += n;
    }
    Ok(len as u64)
}
