//! AWS's event-stream encoding (`application/vnd.amazon.eventstream`), as
//! InvokeWithResponseStream answers in it: each message a prelude (total
//! and header lengths, their CRC-32), string headers, the payload and the
//! CRC-32 of all before it.

use bytes::{BufMut, Bytes, BytesMut};

/// CRC-32 (IEEE 802.3, reflected), as the encoding uses it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One message with string `headers` and `payload`.
pub fn message(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut encoded_headers = BytesMut::new();
    for (name, value) in headers {
        encoded_headers.put_u8(name.len() as u8);
        encoded_headers.put_slice(name.as_bytes());
        // Type 7: a string, with a 16-bit length.
        encoded_headers.put_u8(7);
        encoded_headers.put_u16(value.len() as u16);
        encoded_headers.put_slice(value.as_bytes());
    }
    let total = 12 + encoded_headers.len() + payload.len() + 4;
    let mut out = BytesMut::with_capacity(total);
    out.put_u32(total as u32);
    out.put_u32(encoded_headers.len() as u32);
    let prelude_crc = crc32(&out[..8]);
    out.put_u32(prelude_crc);
    out.put_slice(&encoded_headers);
    out.put_slice(payload);
    let message_crc = crc32(&out);
    out.put_u32(message_crc);
    out.freeze()
}

/// An event of `kind` with `payload` of `content_type`.
pub fn event(kind: &str, content_type: &str, payload: &[u8]) -> Bytes {
    message(
        &[
            (":event-type", kind),
            (":content-type", content_type),
            (":message-type", "event"),
        ],
        payload,
    )
}

/// InvokeWithResponseStream's `PayloadChunk`.
pub fn payload_chunk(bytes: Bytes) -> Bytes {
    event("PayloadChunk", "application/octet-stream", &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_is_ieees() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_message_is_framed_with_its_lengths_and_checksums() {
        let m = message(&[(":event-type", "PayloadChunk")], b"hi");
        let total = u32::from_be_bytes(m[0..4].try_into().unwrap()) as usize;
        let headers = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, m.len());
        assert_eq!(headers, 1 + 11 + 1 + 2 + 12);
        assert_eq!(
            u32::from_be_bytes(m[8..12].try_into().unwrap()),
            crc32(&m[..8])
        );
        assert_eq!(&m[12 + headers..total - 4], b"hi");
        assert_eq!(
            u32::from_be_bytes(m[total - 4..].try_into().unwrap()),
            crc32(&m[..total - 4])
        );
    }
}
