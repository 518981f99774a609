//! The report drawn as SVG, by hand: latency rows as horizontal bars on a
//! log-scale millisecond axis (a 0.5 ms spawn and a 3 s Linux boot on one
//! linear axis would leave every Mayfly row invisible), the bar at the
//! median with a whisker to p90; then throughput as grouped bars, API cold
//! invocations beside empty-VM boots at each concurrency.

use std::fmt::Write as _;

use super::report::{Outcome, Rate, Report};
use super::stats::fmt_ms;

const WIDTH: f64 = 960.0;
const LABEL_W: f64 = 250.0;
const PLOT_RIGHT: f64 = WIDTH - 150.0;
const ROW_H: f64 = 30.0;
const BAR_H: f64 = 18.0;
const FONT: &str = "font-family=\"Helvetica, Arial, sans-serif\"";
const BAR: &str = "#3b7dd8";
const BAR_ALT: &str = "#e08a2c";
const MUTED: &str = "#888";

/// Decades covering `[min, max]` ms: the axis runs from 10^lo to 10^hi.
pub fn decades(min: f64, max: f64) -> (i32, i32) {
    let lo = min.max(1e-3).log10().floor() as i32;
    let hi = max.max(1e-3).log10().ceil() as i32;
    (lo, hi.max(lo + 1))
}

/// The x of `ms` on a log axis from 10^lo to 10^hi over the plot area.
pub fn log_x(ms: f64, (lo, hi): (i32, i32)) -> f64 {
    let t = (ms.max(1e-3).log10() - lo as f64) / (hi - lo) as f64;
    LABEL_W + t.clamp(0.0, 1.0) * (PLOT_RIGHT - LABEL_W)
}

/// Escapes text for SVG.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn decade_label(e: i32) -> String {
    match e {
        e if e < 0 => format!("{} ms", 10f64.powi(e)),
        0..=2 => format!("{} ms", 10i64.pow(e as u32)),
        e => format!("{} s", 10i64.pow((e - 3) as u32)),
    }
}

/// The whole chart.
pub fn render(report: &Report) -> String {
    let mut body = String::new();
    let mut y = 20.0;
    let _ = writeln!(
        body,
        "<text x=\"20\" y=\"{}\" font-size=\"18\" font-weight=\"bold\" {FONT}>What isolation costs: start to exit, median (bar) and p90 (whisker)</text>",
        y + 12.0
    );
    let m = &report.machine;
    let qemu = m.qemu.split(" (").next().unwrap_or_default();
    for (k, line) in [
        format!(
            "{} logical CPUs, {:.0} GiB, {qemu}, accelerator {}",
            m.cores,
            m.mem_total_kib as f64 / 1048576.0,
            m.accel
        ),
        report.mode.clone(),
    ]
    .iter()
    .enumerate()
    {
        let _ = writeln!(
            body,
            "<text x=\"20\" y=\"{}\" font-size=\"12\" fill=\"{MUTED}\" {FONT}>{}</text>",
            y + 30.0 + 15.0 * k as f64,
            esc(line)
        );
    }
    y += 15.0;
    y += 50.0;
    y = latency_panel(&mut body, report, y);
    y += 30.0;
    y = throughput_panel(&mut body, report, y);
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{h}\" viewBox=\"0 0 {WIDTH} {h}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{body}</svg>\n",
        h = y + 20.0
    )
}

fn latency_panel(out: &mut String, report: &Report, top: f64) -> f64 {
    let measured: Vec<(f64, f64)> = report
        .rows
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Measured { ms, .. } => Some((ms.p50, ms.p90)),
            _ => None,
        })
        .collect();
    let min = measured.iter().map(|m| m.0).fold(f64::INFINITY, f64::min);
    let max = measured.iter().map(|m| m.1).fold(0.0, f64::max);
    let axis = if measured.is_empty() {
        (-1, 4)
    } else {
        decades(min, max)
    };
    let plot_top = top + 10.0;
    let plot_bottom = plot_top + ROW_H * report.rows.len() as f64;
    // Grid and decade labels.
    for e in axis.0..=axis.1 {
        let x = log_x(10f64.powi(e), axis);
        let _ = writeln!(out, "<line x1=\"{x:.1}\" y1=\"{plot_top}\" x2=\"{x:.1}\" y2=\"{plot_bottom}\" stroke=\"#ccc\"/>");
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" {FONT}>{}</text>",
            plot_bottom + 16.0,
            decade_label(e)
        );
        for k in [2.0, 5.0] {
            let v = k * 10f64.powi(e);
            if e < axis.1 {
                let x = log_x(v, axis);
                let _ = writeln!(out, "<line x1=\"{x:.1}\" y1=\"{plot_top}\" x2=\"{x:.1}\" y2=\"{plot_bottom}\" stroke=\"#eee\"/>");
            }
        }
    }
    for (i, row) in report.rows.iter().enumerate() {
        let cy = plot_top + ROW_H * i as f64 + ROW_H / 2.0;
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"end\" {FONT}>{}</text>",
            LABEL_W - 8.0,
            cy + 4.5,
            esc(row.label)
        );
        match &row.outcome {
            Outcome::Measured { ms, .. } => {
                let x0 = LABEL_W;
                let x50 = log_x(ms.p50, axis);
                let x90 = log_x(ms.p90, axis);
                let _ = writeln!(
                    out,
                    "<rect x=\"{x0}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{BAR_H}\" fill=\"{BAR}\"><title>{}: median {}, p90 {}</title></rect>",
                    cy - BAR_H / 2.0,
                    (x50 - x0).max(1.0),
                    esc(row.label),
                    fmt_ms(ms.p50),
                    fmt_ms(ms.p90)
                );
                let _ = writeln!(out, "<line x1=\"{x50:.1}\" y1=\"{cy:.1}\" x2=\"{x90:.1}\" y2=\"{cy:.1}\" stroke=\"#222\" stroke-width=\"1.5\"/>");
                let _ = writeln!(out, "<line x1=\"{x90:.1}\" y1=\"{:.1}\" x2=\"{x90:.1}\" y2=\"{:.1}\" stroke=\"#222\" stroke-width=\"1.5\"/>", cy - 6.0, cy + 6.0);
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" {FONT}>{} <tspan fill=\"{MUTED}\">(p90 {})</tspan></text>",
                    x90 + 6.0,
                    cy + 4.0,
                    fmt_ms(ms.p50),
                    fmt_ms(ms.p90)
                );
            }
            Outcome::Skipped(_) | Outcome::Failed(_) => {
                let word = if matches!(row.outcome, Outcome::Skipped(_)) {
                    "skipped (see the report's notes)"
                } else {
                    "failed (see the report's notes)"
                };
                let _ = writeln!(out, "<text x=\"{}\" y=\"{:.1}\" font-size=\"12\" font-style=\"italic\" fill=\"{MUTED}\" {FONT}>{word}</text>", LABEL_W + 6.0, cy + 4.0);
            }
        }
    }
    plot_bottom + 24.0
}

fn throughput_panel(out: &mut String, report: &Report, top: f64) -> f64 {
    let _ = writeln!(
        out,
        "<text x=\"20\" y=\"{}\" font-size=\"16\" font-weight=\"bold\" {FONT}>Throughput: completed per second by concurrent clients</text>",
        top + 12.0
    );
    let rates = |r: &Result<Rate, String>| r.as_ref().map(|r| r.per_s).unwrap_or(0.0);
    let max = report
        .throughput
        .iter()
        .flat_map(|t| [rates(&t.api), rates(&t.floor)])
        .fold(0.0, f64::max);
    let scale_max = nice_ceiling(max.max(1.0));
    let plot_top = top + 30.0;
    let group_h = 2.0 * BAR_H + 12.0;
    let plot_bottom = plot_top + group_h * report.throughput.len() as f64;
    let x_of = |v: f64| LABEL_W + (v / scale_max).clamp(0.0, 1.0) * (PLOT_RIGHT - LABEL_W);
    for k in 0..=5 {
        let v = scale_max * k as f64 / 5.0;
        let x = x_of(v);
        let _ = writeln!(out, "<line x1=\"{x:.1}\" y1=\"{plot_top}\" x2=\"{x:.1}\" y2=\"{plot_bottom}\" stroke=\"#ddd\"/>");
        let _ = writeln!(out, "<text x=\"{x:.1}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\" {FONT}>{v:.0}/s</text>", plot_bottom + 16.0);
    }
    for (i, t) in report.throughput.iter().enumerate() {
        let gy = plot_top + group_h * i as f64 + 4.0;
        let clients = if t.clients == 1 {
            "1 client".to_string()
        } else {
            format!("{} clients", t.clients)
        };
        let _ = writeln!(out, "<text x=\"{}\" y=\"{:.1}\" font-size=\"13\" text-anchor=\"end\" {FONT}>{clients}</text>", LABEL_W - 8.0, gy + BAR_H + 4.0);
        for (j, (r, color, name)) in [
            (&t.api, BAR, "API cold invokes"),
            (&t.floor, BAR_ALT, "empty-VM boots"),
        ]
        .into_iter()
        .enumerate()
        {
            let y = gy + j as f64 * BAR_H;
            match r {
                Ok(rate) => {
                    let w = (x_of(rate.per_s) - LABEL_W).max(1.0);
                    let _ = writeln!(out, "<rect x=\"{LABEL_W}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{}\" fill=\"{color}\"><title>{name}: {:.1}/s</title></rect>", BAR_H - 2.0, rate.per_s);
                    let _ = writeln!(
                        out,
                        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"12\" {FONT}>{:.1}/s</text>",
                        LABEL_W + w + 6.0,
                        y + BAR_H - 5.0,
                        rate.per_s
                    );
                }
                Err(_) => {
                    let _ = writeln!(out, "<text x=\"{}\" y=\"{:.1}\" font-size=\"12\" font-style=\"italic\" fill=\"{MUTED}\" {FONT}>{name}: failed</text>", LABEL_W + 6.0, y + BAR_H - 5.0);
                }
            }
        }
    }
    // Legend.
    let ly = plot_bottom + 32.0;
    for (k, (color, name)) in [
        (BAR, "API cold invocations (echo)"),
        (BAR_ALT, "empty-VM boots (QEMU floor)"),
    ]
    .into_iter()
    .enumerate()
    {
        let x = LABEL_W + k as f64 * 260.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"14\" height=\"14\" fill=\"{color}\"/>",
            ly - 11.0
        );
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{ly}\" font-size=\"12\" {FONT}>{name}</text>",
            x + 20.0
        );
    }
    ly + 10.0
}

/// A round axis maximum at or above `v`: 1, 2 or 5 times a power of ten.
pub fn nice_ceiling(v: f64) -> f64 {
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|k| k * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_iso::report::{Row, Throughput};
    use crate::bench_iso::stats::Summary;

    #[test]
    fn log_axis_spans_whole_decades() {
        assert_eq!(decades(0.45, 2900.0), (-1, 4));
        assert_eq!(decades(10.0, 10.0), (1, 2));
        let axis = (0, 3);
        assert_eq!(log_x(1.0, axis), LABEL_W);
        assert_eq!(log_x(1000.0, axis), PLOT_RIGHT);
        let mid = log_x(31.622_776_6, axis);
        assert!((mid - (LABEL_W + PLOT_RIGHT) / 2.0).abs() < 0.01);
        assert_eq!(decade_label(-1), "0.1 ms");
        assert_eq!(decade_label(3), "1 s");
    }

    #[test]
    fn nice_axis_maxima() {
        assert_eq!(nice_ceiling(17.0), 20.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn draws_rows_whiskers_and_skips() {
        let mut r = Report::default();
        r.rows.push(Row {
            label: "a <b> & c",
            what: "",
            outcome: Outcome::Measured {
                ms: Summary {
                    n: 3,
                    p50: 40.0,
                    p90: 50.0,
                },
                rss_kib: None,
                remark: None,
            },
        });
        r.rows.push(Row {
            label: "linux",
            what: "",
            outcome: Outcome::Skipped("x".into()),
        });
        let rate = Rate {
            per_s: 12.0,
            completed: 24,
            ms: Summary {
                n: 24,
                p50: 80.0,
                p90: 90.0,
            },
        };
        r.throughput.push(Throughput {
            clients: 2,
            api: Ok(rate),
            floor: Err("no".into()),
        });
        let svg = render(&r);
        assert!(svg.starts_with("<svg "));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("a &lt;b&gt; &amp; c"));
        assert!(svg.contains("40.0 ms"));
        assert!(svg.contains("skipped"));
        assert!(svg.contains("12.0/s"));
        assert!(svg.contains("empty-VM boots: failed"));
        assert_eq!(svg.matches("<rect").count(), 1 + 1 + 1 + 2); // background, bar, rate bar, legend
    }
}
