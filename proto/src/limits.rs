//! Lambda's limits, as Mayfly enforces them: one copy for the host's
//! command line, its REST API and its runtime API, and for the guest.
//!
//! Sizes are in bytes unless the name says otherwise. The values are
//! Lambda's published quotas; where Lambda writes "6 MB" it means
//! 6 × 1024 × 1024 bytes.
//!
//! ```
//! use mayfly_proto::limits;
//! assert!(limits::MEMORY_MB.contains(&limits::DEFAULT_MEMORY_MB));
//! assert!(!limits::TIMEOUT_S.contains(&(limits::MAX_TIMEOUT_S + 1)));
//! ```

use core::ops::RangeInclusive;

/// Largest payload of a synchronous invocation (`RequestResponse`), both
/// the event and the response: 6 MB.
pub const SYNC_PAYLOAD_BYTES: usize = 6_291_456;
/// Largest payload of an asynchronous invocation (`Event`): 256 KB.
pub const ASYNC_PAYLOAD_BYTES: usize = 262_144;

/// Least memory a function may be given, in MB.
pub const MIN_MEMORY_MB: u32 = 128;
/// Most memory a function may be given, in MB.
pub const MAX_MEMORY_MB: u32 = 10_240;
/// The memory sizes Lambda accepts, in MB.
pub const MEMORY_MB: RangeInclusive<u32> = MIN_MEMORY_MB..=MAX_MEMORY_MB;
/// Memory of a function created without `MemorySize`, in MB.
pub const DEFAULT_MEMORY_MB: u32 = 128;

/// Shortest timeout, in seconds.
pub const MIN_TIMEOUT_S: u32 = 1;
/// Longest timeout, in seconds (15 minutes).
pub const MAX_TIMEOUT_S: u32 = 900;
/// The timeouts Lambda accepts, in seconds.
pub const TIMEOUT_S: RangeInclusive<u32> = MIN_TIMEOUT_S..=MAX_TIMEOUT_S;
/// Timeout of a function created without `Timeout`, in seconds.
pub const DEFAULT_TIMEOUT_S: u32 = 3;

/// Largest environment: keys and values together, 4 KB.
pub const ENV_MAX_BYTES: usize = 4096;

/// Largest zipped deployment package uploaded directly: 50 MB.
pub const ZIPPED_PACKAGE_BYTES: u64 = 52_428_800;
/// Largest deployment package once unzipped: 250 MB. Also the largest
/// image (`bootstrap`) Mayfly runs.
pub const UNZIPPED_PACKAGE_BYTES: u64 = 262_144_000;

/// The lowest address an ET_EXEC Linux program may load at: the guest
/// kernel keeps the low 4 MiB for itself (musl and Go link at exactly
/// this; ld.lld's default of 0x200000 is below it).
pub const LINUX_LOWEST_ADDRESS: u64 = 0x40_0000;

/// Size of a Linux function's writable `/tmp` when none is given, in MB
/// (Lambda's default `EphemeralStorage.Size`).
pub const DEFAULT_EPHEMERAL_MB: u32 = 512;
/// The `EphemeralStorage.Size` values Lambda accepts, in MB.
pub const EPHEMERAL_MB: RangeInclusive<u32> = DEFAULT_EPHEMERAL_MB..=10_240;

/// Most log returned with an invocation's `X-Amz-Log-Type: Tail`: the
/// last 4 KB.
pub const LOG_TAIL_BYTES: usize = 4096;

/// Most tags a function may have.
pub const TAGS_PER_FUNCTION: usize = 50;
/// The lengths of a tag key Lambda accepts, in Unicode characters.
pub const TAG_KEY_CHARS: RangeInclusive<usize> = 1..=128;
/// The lengths of a tag value Lambda accepts, in Unicode characters.
pub const TAG_VALUE_CHARS: RangeInclusive<usize> = 0..=256;
/// The prefix of the tag keys AWS keeps for itself (in any case: `AWS:` and
/// `Aws:` too); no request may set one.
pub const RESERVED_TAG_PREFIX: &str = "aws:";

// Checked when the crate compiles: an edit that breaks one fails the build.
const _: () = assert!(ASYNC_PAYLOAD_BYTES < SYNC_PAYLOAD_BYTES);
const _: () = assert!(ZIPPED_PACKAGE_BYTES < UNZIPPED_PACKAGE_BYTES);
const _: () = assert!(DEFAULT_EPHEMERAL_MB == crate::boot::DEFAULT_TMP_MB);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_published_figures() {
        assert_eq!(SYNC_PAYLOAD_BYTES, 6 * 1024 * 1024);
        assert_eq!(ASYNC_PAYLOAD_BYTES, 256 * 1024);
        assert_eq!(ZIPPED_PACKAGE_BYTES, 50 * 1024 * 1024);
        assert_eq!(UNZIPPED_PACKAGE_BYTES, 250 * 1024 * 1024);
        assert_eq!(ENV_MAX_BYTES, 4 * 1024);
        assert_eq!(LOG_TAIL_BYTES, 4 * 1024);
        assert_eq!(MAX_TIMEOUT_S, 15 * 60);
        assert_eq!(MAX_MEMORY_MB, 10 * 1024);
        assert_eq!(TAGS_PER_FUNCTION, 50);
        assert_eq!((TAG_KEY_CHARS, TAG_VALUE_CHARS), (1..=128, 0..=256));
    }

    #[test]
    fn ranges_hold_their_bounds_and_defaults() {
        assert!(MEMORY_MB.contains(&MIN_MEMORY_MB) && MEMORY_MB.contains(&MAX_MEMORY_MB));
        assert!(!MEMORY_MB.contains(&(MIN_MEMORY_MB - 1)));
        assert!(!MEMORY_MB.contains(&(MAX_MEMORY_MB + 1)));
        assert!(TIMEOUT_S.contains(&MIN_TIMEOUT_S) && TIMEOUT_S.contains(&MAX_TIMEOUT_S));
        assert!(!TIMEOUT_S.contains(&0) && !TIMEOUT_S.contains(&(MAX_TIMEOUT_S + 1)));
        assert!(MEMORY_MB.contains(&DEFAULT_MEMORY_MB));
        assert!(TIMEOUT_S.contains(&DEFAULT_TIMEOUT_S));
    }
}
