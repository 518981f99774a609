//! The `chunked` transfer coding of a request body (RFC 9112 §7.1), decoded
//! as it arrives. Strict on purpose: framing that two HTTP parsers could
//! read differently (a bare LF, a sign or space inside a size, a size too
//! large to represent) is refused rather than guessed at, and both the body
//! and the framing around it have hard caps, so that an endless stream of
//! chunks, large or tiny, costs the host a bounded amount.

use bytes::BytesMut;

/// Longest chunk-size line (size and extensions) accepted.
pub const MAX_SIZE_LINE_BYTES: usize = 1024;
/// Most trailer bytes accepted after the last chunk.
pub const MAX_TRAILER_BYTES: usize = 8 * 1024;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkError {
    /// The framing is not valid chunked coding.
    Invalid(&'static str),
    /// The decoded body would exceed its limit.
    BodyTooLarge,
    /// The framing (sizes, extensions, trailers) is out of proportion to
    /// the body it carries.
    FramingTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first hex digit of a chunk size.
    SizeStart,
    /// More hex digits, or what may follow them.
    SizeDigits,
    /// After a `;`: an extension, skipped up to the line's end.
    Extension,
    /// A CR was seen at the end of a size line.
    SizeLf,
    /// Chunk data, this many bytes left.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataCr,
    DataLf,
    /// The start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    Trailer,
    TrailerLf,
    FinalLf,
    Done,
}

/// A chunked body being decoded.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    size: u64,
    line: usize,
    trailer: usize,
    /// The trailer section as received (CRs dropped), for
    /// [`trailers`](Self::trailers).
    trailers: Vec<u8>,
    /// Data bytes decoded so far (the body may be taken as it comes).
    decoded: u64,
    /// Framing bytes seen so far (everything that is not data).
    framing: usize,
    max_body: usize,
    max_framing: usize,
}

impl Chunked {
    /// A decoder for a body of at most `max_body` bytes, with at most
    /// `max_body / 8` (and at least 64 KiB) of framing around it.
    pub fn new(max_body: usize) -> Chunked {
        Chunked {
            state: State::SizeStart,
            size: 0,
            line: 0,
            trailer: 0,
            trailers: Vec::new(),
            decoded: 0,
            framing: 0,
            max_body,
            max_framing: (max_body / 8).max(64 * 1024),
        }
    }

    /// Decodes what `input` holds, appending data to `body`; returns how
    /// many bytes of `input` it used and whether the body is complete (then
    /// the rest of `input` belongs to the next request).
    pub fn feed(&mut self, input: &[u8], body: &mut BytesMut) -> Result<(usize, bool), ChunkError> {
        let mut at = 0;
        while at < input.len() {
            if let State::Data(left) = self.state {
                let n = (left as usize).min(input.len() - at);
                body.extend_from_slice(&input[at..at + n]);
                at += n;
                self.decoded += n as u64;
                self.state = match left - n as u64 {
                    0 => State::DataCr,
                    rest => State::Data(rest),
                };
                continue;
            }
            if self.state == State::Done {
                break;
            }
            let byte = input[at];
            at += 1;
            self.framing += 1;
            if self.framing > self.max_framing {
                return Err(ChunkError::FramingTooLarge);
            }
            self.step(byte)?;
        }
        Ok((at, self.state == State::Done))
    }

    /// The trailer fields, `(name, value)` with the name in lower case,
    /// once the body is complete.
    pub fn trailers(&self) -> Vec<(String, String)> {
        String::from_utf8_lossy(&self.trailers)
            .lines()
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect()
    }

    fn step(&mut self, byte: u8) -> Result<(), ChunkError> {
        use State::*;
        match self.state {
            SizeStart | SizeDigits => {
                self.line += 1;
                if self.line > MAX_SIZE_LINE_BYTES {
                    return Err(ChunkError::Invalid("chunk-size line too long"));
                }
                if let Some(digit) = (byte as char).to_digit(16) {
                    // A size beyond the body's limit fails below; stopping
                    // here keeps the arithmetic from overflowing.
                    self.size = self.size * 16 + u64::from(digit);
                    if self.size > self.max_body as u64 {
                        return Err(ChunkError::BodyTooLarge);
                    }
                    self.state = SizeDigits;
                    return Ok(());
                }
                if self.state == SizeStart {
                    return Err(ChunkError::Invalid("chunk size is not a hex number"));
                }
                match byte {
                    b';' => self.state = Extension,
                    b'\r' => self.state = SizeLf,
                    _ => return Err(ChunkError::Invalid("unexpected byte after a chunk size")),
                }
            }
            Extension => {
                self.line += 1;
                if self.line > MAX_SIZE_LINE_BYTES {
                    return Err(ChunkError::Invalid("chunk-size line too long"));
                }
                match byte {
                    b'\r' => self.state = SizeLf,
                    b'\n' | 0 => {
                        return Err(ChunkError::Invalid("bare LF or NUL in a chunk extension"))
                    }
                    _ => {}
                }
            }
            SizeLf => {
                if byte != b'\n' {
                    return Err(ChunkError::Invalid("chunk-size line not ended by CRLF"));
                }
                if self.decoded + self.size > self.max_body as u64 {
                    return Err(ChunkError::BodyTooLarge);
                }
                self.line = 0;
                self.state = match self.size {
                    0 => TrailerStart,
                    size => Data(size),
                };
                self.size = 0;
            }
            DataCr => match byte {
                b'\r' => self.state = DataLf,
                _ => return Err(ChunkError::Invalid("chunk data not followed by CRLF")),
            },
            DataLf => match byte {
                b'\n' => self.state = SizeStart,
                _ => return Err(ChunkError::Invalid("chunk data not followed by CRLF")),
            },
            TrailerStart | Trailer => {
                self.trailer += 1;
                if self.trailer > MAX_TRAILER_BYTES {
                    return Err(ChunkError::FramingTooLarge);
                }
                match (self.state, byte) {
                    (TrailerStart, b'\r') => self.state = FinalLf,
                    (_, b'\r') => self.state = TrailerLf,
                    (_, b'\n') => return Err(ChunkError::Invalid("bare LF in a trailer")),
                    _ => {
                        self.trailers.push(byte);
                        self.state = Trailer;
                    }
                }
            }
            TrailerLf => match byte {
                b'\n' => {
                    self.trailers.push(b'\n');
                    self.state = TrailerStart;
                }
                _ => return Err(ChunkError::Invalid("trailer line not ended by CRLF")),
            },
            FinalLf => match byte {
                b'\n' => self.state = Done,
                _ => return Err(ChunkError::Invalid("chunked body not ended by CRLF")),
            },
            Data(_) | Done => unreachable!("handled by feed"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(
        wire: &[u8],
        piece: usize,
        max: usize,
    ) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut decoder = Chunked::new(max);
        let mut body = BytesMut::new();
        let mut used = 0;
        for chunk in wire.chunks(piece) {
            let (n, done) = decoder.feed(chunk, &mut body)?;
            used += n;
            if done {
                return Ok((body.to_vec(), used));
            }
            assert_eq!(n, chunk.len(), "an unfinished body uses all its input");
        }
        Err(ChunkError::Invalid("incomplete"))
    }

    #[test]
    fn decodes_in_any_pieces_and_stops_at_its_end() {
        let wire = b"5\r\nhello\r\n1;ext=\"x\"\r\n \r\n6\r\nworld!\r\n0\r\nX-T: 1\r\n\r\nGET /next";
        for piece in [1, 2, 3, 7, wire.len()] {
            let (body, used) = decode_in_pieces(wire, piece, 1024).unwrap();
            assert_eq!(body, b"hello world!");
            assert_eq!(&wire[used..], b"GET /next", "piece {piece}");
        }
    }

    #[test]
    fn upper_case_hex_and_empty_body() {
        assert_eq!(
            decode_in_pieces(b"A\r\n0123456789\r\n0\r\n\r\n", 4, 64)
                .unwrap()
                .0,
            b"0123456789"
        );
        assert_eq!(decode_in_pieces(b"0\r\n\r\n", 1, 64).unwrap().0, b"");
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for wire in [
            &b"x\r\n"[..],
            b"\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-1\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nX: 1\n\r\n",
            b"5;a\nb\r\nhello\r\n",
        ] {
            assert!(
                matches!(decode_in_pieces(wire, 1, 64), Err(ChunkError::Invalid(_))),
                "{:?} accepted",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn the_body_limit_holds_across_chunks_and_for_huge_sizes() {
        assert_eq!(
            decode_in_pieces(b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n", 5, 15),
            Err(ChunkError::BodyTooLarge)
        );
        assert_eq!(
            decode_in_pieces(b"ffffffffffffffffffffffff\r\n", 1, 1 << 20),
            Err(ChunkError::BodyTooLarge)
        );
        // Exactly at the limit is fine.
        assert_eq!(
            decode_in_pieces(b"F\r\n123456789012345\r\n0\r\n\r\n", 3, 15)
                .unwrap()
                .0
                .len(),
            15
        );
    }

    #[test]
    fn endless_tiny_chunks_and_trailers_hit_the_framing_cap() {
        let mut wire = Vec::new();
        for _ in 0..200_000 {
            wire.extend_from_slice(b"1\r\nx\r\n");
        }
        assert_eq!(
            decode_in_pieces(&wire, 4096, 6 << 20),
            Err(ChunkError::FramingTooLarge)
        );
        let mut trailers = b"0\r\n".to_vec();
        for _ in 0..2000 {
            trailers.extend_from_slice(b"X-A: b\r\n");
        }
        assert_eq!(
            decode_in_pieces(&trailers, 512, 1 << 20),
            Err(ChunkError::FramingTooLarge)
        );
        let long_ext = [b"1;".as_slice(), &[b'e'; 2000]].concat();
        assert!(matches!(
            decode_in_pieces(&long_ext, 64, 1 << 20),
            Err(ChunkError::Invalid(_))
        ));
    }

    #[test]
    fn trailers_are_kept_and_a_body_taken_as_it_comes_still_counts_toward_the_limit() {
        let mut decoder = Chunked::new(10);
        let mut body = BytesMut::new();
        let wire = b"4\r\nabcd\r\n0\r\nLambda-Runtime-Function-Error-Type: Boom\r\nX: y\r\n\r\n";
        let (used, done) = decoder.feed(wire, &mut body).unwrap();
        assert!(done);
        assert_eq!(used, wire.len());
        assert_eq!(&body[..], b"abcd");
        assert_eq!(
            decoder.trailers(),
            [
                (
                    "lambda-runtime-function-error-type".to_string(),
                    "Boom".to_string()
                ),
                ("x".to_string(), "y".to_string())
            ]
        );
        // Taken away chunk by chunk, the body is still limited as a whole.
        let mut decoder = Chunked::new(10);
        let mut body = BytesMut::new();
        decoder.feed(b"6\r\nabcdef\r\n", &mut body).unwrap();
        body.clear();
        assert_eq!(
            decoder.feed(b"6\r\nabcdef\r\n", &mut body),
            Err(ChunkError::BodyTooLarge)
        );
    }
}
