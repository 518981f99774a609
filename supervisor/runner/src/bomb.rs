//! A lying zip bomb, for tests of the package checks: a small zip whose
//! one entry, `bootstrap`, unpacks to far more than its headers declare.
//!
//! Built by hand (a fixed-Huffman deflate stream of one zero byte, then
//! back-references of 258 bytes at distance 1, 13 bits each), so that a
//! test makes hundreds of MB of output from about 1 MB without spending
//! seconds compressing them.

/// Bits written least significant first, as deflate packs them.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, n: u32) {
        self.acc |= value << self.n;
        self.n += n;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code: sent most significant bit first.
    fn code(&mut self, code: u64, n: u32) {
        let reversed = (0..n).fold(0, |r, i| r | ((code >> i) & 1) << (n - 1 - i));
        self.put(reversed, n);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A raw deflate stream that inflates to `len` zero bytes (`len` is
/// rounded down to 1 + a multiple of 258).
pub fn zeros_deflate(len: u64) -> Vec<u8> {
    let mut bits = Bits {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // BFINAL
    bits.put(1, 2); // BTYPE = 01, fixed Huffman
    bits.code(0x30, 8); // literal 0
    for _ in 0..len.saturating_sub(1) / 258 {
        bits.code(0b1100_0101, 8); // length symbol 285: 258 bytes
        bits.code(0, 5); // distance symbol 0: distance 1
    }
    bits.code(0, 7); // end of block (symbol 256)
    bits.finish()
}

/// A zip with one deflated entry, `bootstrap`, that inflates to about
/// `real_len` zero bytes while its local header and central directory
/// declare `declared_len` (and a CRC of the declared nothing).
pub fn lying_zip(real_len: u64, declared_len: u32) -> Vec<u8> {
    let data = zeros_deflate(real_len);
    let name = b"bootstrap";
    let compressed = data.len() as u32;
    let mut zip = Vec::with_capacity(data.len() + 200);
    let common = |zip: &mut Vec<u8>| {
        zip.extend(20u16.to_le_bytes()); // version needed
        zip.extend(0u16.to_le_bytes()); // flags
        zip.extend(8u16.to_le_bytes()); // deflate
        zip.extend(0u32.to_le_bytes()); // time, date
        zip.extend(0u32.to_le_bytes()); // CRC-32
        zip.extend(compressed.to_le_bytes());
        zip.extend(declared_len.to_le_bytes());
        zip.extend((name.len() as u16).to_le_bytes());
        zip.extend(0u16.to_le_bytes()); // extra length
    };
    zip.extend(0x0403_4b50u32.to_le_bytes());
    common(&mut zip);
    zip.extend(name);
    zip.extend(&data);
    let directory_at = zip.len() as u32;
    zip.extend(0x0201_4b50u32.to_le_bytes());
    zip.extend(20u16.to_le_bytes()); // version made by
    common(&mut zip);
    zip.extend(0u16.to_le_bytes()); // comment length
    zip.extend(0u16.to_le_bytes()); // disk
    zip.extend(0u16.to_le_bytes()); // internal attributes
    zip.extend(0u32.to_le_bytes()); // external attributes
    zip.extend(0u32.to_le_bytes()); // local header offset
    zip.extend(name);
    let directory_len = zip.len() as u32 - directory_at;
    zip.extend(0x0605_4b50u32.to_le_bytes());
    zip.extend(0u16.to_le_bytes()); // this disk
    zip.extend(0u16.to_le_bytes()); // directory's disk
    zip.extend(1u16.to_le_bytes());
    zip.extend(1u16.to_le_bytes());
    zip.extend(directory_len.to_le_bytes());
    zip.extend(directory_at.to_le_bytes());
    zip.extend(0u16.to_le_bytes()); // comment length
    zip
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_stream_inflates_to_what_it_says_and_the_zip_lies() {
        let zip = lying_zip(1_000_000, 1000);
        assert!(zip.len() < 10_000, "{} bytes", zip.len());
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        assert_eq!(archive.by_index_raw(0).unwrap().size(), 1000);
        let mut out = Vec::new();
        // The reader may stop at a CRC mismatch at the end; what matters is
        // that far more than 1000 bytes come out before that.
        let _ = archive.by_index(0).unwrap().read_to_end(&mut out);
        assert!(out.len() > 900_000, "{} bytes came out", out.len());
        assert!(out.iter().all(|&b| b == 0));
    }
}
