//! Lambda-style log lines framing an invocation's log.
//!
//! Lambda separates the `REPORT` fields with tabs, and tools that parse
//! CloudWatch logs rely on that, so tabs it is.

use std::time::Duration;

/// `START RequestId: <id> Version: <version>`.
pub fn start_line(request_id: &str, version: &str) -> String {
    format!("START RequestId: {request_id} Version: {version}")
}

/// `END RequestId: <id>`.
pub fn end_line(request_id: &str) -> String {
    format!("END RequestId: {request_id}")
}

/// The figures of one invocation's `REPORT` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Report<'a> {
    /// The request id.
    pub request_id: &'a str,
    /// Event delivery to result.
    pub duration: Duration,
    /// What is billed, in whole milliseconds.
    pub billed_duration_ms: u64,
    /// The configured memory.
    pub memory_size_mb: u32,
    /// The most memory the guest reported using.
    pub max_memory_used_mb: u64,
    /// VM spawn to the first `next`, when there was one.
    pub init_duration: Option<Duration>,
}

fn millis(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// `REPORT RequestId: <id>\tDuration: 1.23 ms\tBilled Duration: 2 ms\t...`.
pub fn report_line(report: &Report<'_>) -> String {
    let mut line = format!(
        "REPORT RequestId: {}\tDuration: {} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB",
        report.request_id,
        millis(report.duration),
        report.billed_duration_ms,
        report.memory_size_mb,
        report.max_memory_used_mb,
    );
    if let Some(init) = report.init_duration {
        line.push_str(&format!("\tInit Duration: {} ms", millis(init)));
    }
    line
}

/// Lambda bills in whole milliseconds, rounding up, and at least 1 ms.
pub fn billed_ms(duration: Duration) -> u64 {
    (duration.as_nanos().div_ceil(1_000_000) as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        assert_eq!(
            start_line("abc", "$LATEST"),
            "START RequestId: abc Version: $LATEST"
        );
        assert_eq!(end_line("abc"), "END RequestId: abc");
        let report = Report {
            request_id: "abc",
            duration: Duration::from_micros(1234),
            billed_duration_ms: 2,
            memory_size_mb: 128,
            max_memory_used_mb: 5,
            init_duration: Some(Duration::from_micros(45_674)),
        };
        assert_eq!(
            report_line(&report),
            "REPORT RequestId: abc\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 5 MB\tInit Duration: 45.67 ms"
        );
        let report = Report {
            init_duration: None,
            duration: Duration::ZERO,
            ..report
        };
        assert_eq!(
            report_line(&report),
            "REPORT RequestId: abc\tDuration: 0.00 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 5 MB"
        );
    }

    #[test]
    fn billing_rounds_up_to_the_millisecond() {
        assert_eq!(billed_ms(Duration::ZERO), 1);
        assert_eq!(billed_ms(Duration::from_nanos(1)), 1);
        assert_eq!(billed_ms(Duration::from_millis(3)), 3);
        assert_eq!(billed_ms(Duration::from_micros(3001)), 4);
    }
}
