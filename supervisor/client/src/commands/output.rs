//! What the client commands print. Pure: each function returns the text.

use std::fmt::Write as _;
use std::time::Duration;

use crate::client::{FunctionConfiguration, InvocationRecord};
use mayfly_runner::report::{self, Report};

/// `mayfly deploy`'s summary of the resulting configuration.
pub fn deploy_summary(config: &FunctionConfiguration, action: &str) -> String {
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let mut text = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(text, "{label:<12}{value}");
    };
    line("Function:", format!("{} ({action})", config.function_name));
    if let Some(arn) = &config.function_arn {
        line("ARN:", arn.clone());
    }
    line(
        "Version:",
        config
            .version
            .clone()
            .unwrap_or_else(|| "$LATEST".to_owned()),
    );
    line(
        "Memory:",
        or_dash(config.memory_size.map(|m| format!("{m} MB"))),
    );
    line(
        "Timeout:",
        or_dash(config.timeout.map(|t| format!("{t} s"))),
    );
    line("CodeSha256:", or_dash(config.code_sha256.clone()));
    line("CodeSize:", format!("{} bytes", config.code_size));
    text
}

/// A size in bytes as people read it: `512 B`, `70.1 KiB`, `3.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if bytes < 1024 {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    }
}

/// `mayfly ls`'s table: NAME, MEMORY, TIMEOUT, CODE SIZE, LAST MODIFIED,
/// columns as wide as their widest cell, two spaces apart.
pub fn functions_table(functions: &[FunctionConfiguration]) -> String {
    let header = ["NAME", "MEMORY", "TIMEOUT", "CODE SIZE", "LAST MODIFIED"].map(str::to_owned);
    let rows: Vec<[String; 5]> = functions
        .iter()
        .map(|f| {
            [
                f.function_name.clone(),
                f.memory_size.map_or("-".into(), |m| format!("{m} MB")),
                f.timeout.map_or("-".into(), |t| format!("{t} s")),
                human_size(f.code_size),
                f.last_modified.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let mut widths = header.each_ref().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn millis(ms: f64) -> Duration {
    // A negative or NaN figure from a confused server must not panic.
    Duration::try_from_secs_f64(ms / 1000.0).unwrap_or_default()
}

/// `mayfly logs` as text: for each invocation, oldest first (`records`
/// come newest first), its log framed by `START`, `END` and `REPORT` lines
/// as Lambda writes them.
///
/// `mayfly serve` records the log already framed, keeping its last part
/// only; such a log (one holding its own `END` line) is printed as it is,
/// with the `START` line put back if the cut took it.
pub fn logs_text(records: &[InvocationRecord]) -> String {
    let mut text = String::new();
    for r in records.iter().rev() {
        let start = report::start_line(&r.request_id, &r.version);
        let end = report::end_line(&r.request_id);
        if r.log.contains(&end) {
            if !r.log.starts_with(&start) {
                text.push_str(&start);
                text.push('\n');
            }
            text.push_str(&r.log);
            if !r.log.ends_with('\n') {
                text.push('\n');
            }
            continue;
        }
        text.push_str(&start);
        text.push('\n');
        text.push_str(&r.log);
        if !r.log.is_empty() && !r.log.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&end);
        text.push('\n');
        text.push_str(&report::report_line(&Report {
            request_id: &r.request_id,
            duration: millis(r.duration_ms),
            billed_duration_ms: r.billed_duration_ms,
            memory_size_mb: r.memory_size_mb,
            max_memory_used_mb: r.max_memory_used_mb,
            init_duration: r.init_duration_ms.map(millis),
        }));
        text.push('\n');
    }
    text
}

/// `mayfly logs --json`: one compact JSON object a line, newest first.
pub fn logs_json(records: &[InvocationRecord]) -> String {
    let mut text = String::new();
    for record in records {
        // Serialising plain strings and numbers cannot fail; a NaN would
        // become null, which is still a line of JSON.
        text.push_str(&serde_json::to_string(record).unwrap_or_else(|_| "{}".to_owned()));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, memory: u32, size: u64) -> FunctionConfiguration {
        FunctionConfiguration {
            function_name: name.into(),
            memory_size: Some(memory),
            timeout: Some(3),
            code_size: size,
            code_sha256: Some("q1w2e3=".into()),
            last_modified: Some("2025-01-01T00:00:00.000+0000".into()),
            version: Some("$LATEST".into()),
            ..Default::default()
        }
    }

    fn record(id: &str, log: &str, init: Option<f64>) -> InvocationRecord {
        InvocationRecord {
            request_id: id.into(),
            version: "$LATEST".into(),
            invocation_type: "RequestResponse".into(),
            status: "success".into(),
            error_type: None,
            started_at: "2025-01-01T00:00:00Z".into(),
            duration_ms: 1.234,
            billed_duration_ms: 2,
            init_duration_ms: init,
            memory_size_mb: 128,
            max_memory_used_mb: 5,
            log: log.into(),
        }
    }

    #[test]
    fn summary() {
        let text = deploy_summary(&config("echo", 256, 70_000), "created");
        assert_eq!(
            text,
            "Function:   echo (created)\nVersion:    $LATEST\nMemory:     256 MB\nTimeout:    3 s\n\
             CodeSha256: q1w2e3=\nCodeSize:   70000 bytes\n"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(71_782), "70.1 KiB");
        assert_eq!(human_size(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn table() {
        let text = functions_table(&[config("echo", 128, 512), config("wordcount", 10240, 2048)]);
        assert_eq!(
            text,
            "NAME       MEMORY    TIMEOUT  CODE SIZE  LAST MODIFIED\n\
             echo       128 MB    3 s      512 B      2025-01-01T00:00:00.000+0000\n\
             wordcount  10240 MB  3 s      2.0 KiB    2025-01-01T00:00:00.000+0000\n"
        );
        assert_eq!(
            functions_table(&[]),
            "NAME  MEMORY  TIMEOUT  CODE SIZE  LAST MODIFIED\n"
        );
    }

    #[test]
    fn logs_as_lambda_writes_them_oldest_first() {
        let records = [
            record("new", "", None),
            record("old", "hello\n", Some(45.678)),
        ];
        assert_eq!(
            logs_text(&records),
            "START RequestId: old Version: $LATEST\nhello\nEND RequestId: old\n\
             REPORT RequestId: old\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 5 MB\tInit Duration: 45.68 ms\n\
             START RequestId: new Version: $LATEST\nEND RequestId: new\n\
             REPORT RequestId: new\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 5 MB\n"
        );
        // Framed by the server already: as it is, START restored if cut.
        let framed = record("f", "START RequestId: f Version: $LATEST\nhi\nEND RequestId: f\nREPORT RequestId: f\tDuration: 1 ms", None);
        assert_eq!(
            logs_text(&[framed]),
            "START RequestId: f Version: $LATEST\nhi\nEND RequestId: f\nREPORT RequestId: f\tDuration: 1 ms\n"
        );
        let cut = record("c", "i\nEND RequestId: c\nREPORT RequestId: c\n", None);
        assert_eq!(
            logs_text(&[cut]),
            "START RequestId: c Version: $LATEST\ni\nEND RequestId: c\nREPORT RequestId: c\n"
        );
        let mut no_newline = record("x", "partial", None);
        no_newline.duration_ms = -1.0;
        assert!(logs_text(&[no_newline]).contains("partial\nEND RequestId: x\n"));
    }

    #[test]
    fn logs_as_json_lines_newest_first() {
        let text = logs_json(&[record("new", "", None), record("old", "a\n", Some(2.5))]);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["requestId"], "new");
        assert_eq!(lines[0]["initDurationMs"], serde_json::Value::Null);
        assert_eq!(lines[0]["errorType"], serde_json::Value::Null);
        assert_eq!(lines[1]["initDurationMs"], 2.5);
        assert_eq!(lines[1]["log"], "a\n");
        for key in [
            "version",
            "invocationType",
            "status",
            "startedAt",
            "durationMs",
            "billedDurationMs",
            "memorySizeMb",
            "maxMemoryUsedMb",
        ] {
            assert!(lines[0].get(key).is_some(), "{key}");
        }
    }
}
