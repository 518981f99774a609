//! Schedules with the real AWS CLI (`aws scheduler ... --endpoint-url`):
//! an `at()` schedule fires once, on time; a `rate(1 minute)` schedule
//! fires once a minute, and a fire missed while the host was down runs
//! once when it is back, neither lost nor repeated (checked from the
//! invocation records); bad schedules get Scheduler's errors.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::aws::function_arn;
use crate::support::fixtures::image_path;
use crate::support::Server;

const ROLE: &str = "arn:aws:iam::000000000000:role/scheduler";

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A record's `startedAt` in ms.
fn started_ms(record: &Value) -> u64 {
    let text = record["startedAt"].as_str().unwrap();
    let local = text.strip_suffix('Z').unwrap();
    mayfly_store::parse_timestamp_ms(&format!("{local}+0000")).unwrap()
}

fn target(function: &str, input: &Value) -> String {
    json!({
        "Arn": function_arn(function),
        "RoleArn": ROLE,
        "Input": input.to_string(),
    })
    .to_string()
}

/// `aws scheduler create-schedule`.
fn create_schedule(s: &Server, name: &str, expression: &str, target: &str) -> Value {
    s.aws_service(
        "scheduler",
        &[
            "create-schedule",
            "--name",
            name,
            "--schedule-expression",
            expression,
            "--flexible-time-window",
            "Mode=OFF",
            "--target",
            target,
        ],
    )
    .ok()
}

/// Waits up to `within` for `function` to have `count` invocation records;
/// them, oldest first.
fn wait_for_records(s: &Server, function: &str, count: usize, within: Duration) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let mut records = s.invocations(function, 20);
        if records.len() >= count {
            records.reverse();
            return records;
        }
        assert!(
            Instant::now() < deadline,
            "{function} has {} of {count} invocations after {within:?}:\n{}",
            records.len(),
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn an_at_schedule_fires_once_within_two_seconds_of_its_time() {
    let s = Server::start();
    s.create("at-echo", &image_path("echo.zip"), &[]);
    // Six seconds ahead, to the second, in UTC.
    let at_ms = (now_ms() / 1000 + 6) * 1000;
    let at = &mayfly_store::format_rfc3339(at_ms)[..19];
    let made = create_schedule(
        &s,
        "once",
        &format!("at({at})"),
        &target("at-echo", &json!({"fired": "once"})),
    );
    assert_eq!(
        made["ScheduleArn"],
        "arn:aws:scheduler:us-east-1:000000000000:schedule/default/once"
    );
    let got = s
        .aws_service("scheduler", &["get-schedule", "--name", "once"])
        .ok();
    assert_eq!(got["ScheduleExpression"], format!("at({at})"));
    assert_eq!(got["State"], "ENABLED");
    assert_eq!(got["Target"]["Arn"], function_arn("at-echo"));
    let records = wait_for_records(&s, "at-echo", 1, Duration::from_secs(30));
    let started = started_ms(&records[0]);
    println!(
        "the at() schedule's invocation started {} ms after its time",
        started as i64 - at_ms as i64
    );
    assert!(
        started + 500 >= at_ms && started <= at_ms + 2000,
        "fired at {started}, due at {at_ms}"
    );
    assert_eq!(records[0]["invocationType"], "Event");
    assert_eq!(records[0]["status"], "success");
    // Once only.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.invocations("at-echo", 20).len(), 1);
    let listed = s.aws_service("scheduler", &["list-schedules"]).ok();
    assert_eq!(listed["Schedules"][0]["Name"], "once");
    s.aws_service("scheduler", &["delete-schedule", "--name", "once"])
        .ok();
    let gone = s.aws_service("scheduler", &["get-schedule", "--name", "once"]);
    assert_ne!(gone.code, 0);
    assert!(
        gone.stderr.contains("ResourceNotFoundException"),
        "{}",
        gone.stderr
    );
}

#[test]
fn a_rate_schedule_fires_each_minute_and_a_fire_missed_while_down_runs_once_on_start() {
    let mut s = Server::start();
    s.create("rate-echo", &image_path("echo.zip"), &[]);
    create_schedule(
        &s,
        "minutely",
        "rate(1 minute)",
        &target("rate-echo", &json!({"fired": "minutely"})),
    );
    let got = s
        .aws_service("scheduler", &["get-schedule", "--name", "minutely"])
        .ok();
    let created_ms = (got["CreationDate"].as_f64().unwrap() * 1000.0) as u64;
    // The first fire, a minute after it was made.
    let first = wait_for_records(&s, "rate-echo", 1, Duration::from_secs(75));
    let first_ms = started_ms(&first[0]);
    println!(
        "the first rate fire started at +{} ms",
        first_ms - created_ms
    );
    assert!(
        first_ms + 500 >= created_ms + 60_000 && first_ms <= created_ms + 62_000,
        "first fire at +{} ms",
        first_ms - created_ms
    );
    // Down across the second fire (+120 s): stopped at +100 s, back at +125 s.
    let wait_until = |ms: u64| {
        let now = now_ms();
        if ms > now {
            std::thread::sleep(Duration::from_millis(ms - now));
        }
    };
    wait_until(created_ms + 100_000);
    s.stop_cleanly();
    wait_until(created_ms + 125_000);
    s.restart();
    let both = wait_for_records(&s, "rate-echo", 2, Duration::from_secs(15));
    let second_ms = started_ms(&both[1]);
    println!(
        "the missed fire ran at +{} ms (the host was back at +125000 ms)",
        second_ms - created_ms
    );
    assert!(
        second_ms >= created_ms + 125_000 && second_ms <= created_ms + 135_000,
        "the missed fire ran at +{} ms",
        second_ms - created_ms
    );
    assert_ne!(both[0]["requestId"], both[1]["requestId"]);
    // Neither lost nor repeated: two fires, and no third before +180 s.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(s.invocations("rate-echo", 20).len(), 2, "{}", s.log());
}

#[test]
fn bad_schedules_get_schedulers_errors_and_change_nothing() {
    let s = Server::start();
    s.create("bad-echo", &image_path("echo.zip"), &[]);
    let refused = |args: &[&str], code: &str| {
        let cli = s.aws_service("scheduler", args);
        assert_ne!(cli.code, 0, "{args:?} succeeded");
        assert!(cli.stderr.contains(code), "{args:?}: {}", cli.stderr);
    };
    let target = target("bad-echo", &json!({}));
    let create = |name: &'static str, expression: &'static str| {
        [
            "create-schedule",
            "--name",
            name,
            "--schedule-expression",
            expression,
            "--flexible-time-window",
            "Mode=OFF",
            "--target",
        ]
    };
    for expression in ["rate(1 minutes)", "cron(0 9 * * *)", "every day"] {
        let mut args = create("bad", expression).to_vec();
        args.push(&target);
        refused(&args, "ValidationException");
    }
    let mut zone = create("bad", "cron(0 9 * * ? *)").to_vec();
    zone.extend([&target, "--schedule-expression-timezone", "Mars/Olympus"]);
    refused(&zone[..], "ValidationException");
    let sqs = json!({"Arn": "arn:aws:sqs:us-east-1:000000000000:q", "RoleArn": ROLE}).to_string();
    let mut other = create("bad", "rate(5 minutes)").to_vec();
    other.push(&sqs);
    refused(&other, "ValidationException");
    create_schedule(&s, "good", "rate(5 minutes)", &target);
    let mut twice = create("good", "rate(5 minutes)").to_vec();
    twice.push(&target);
    refused(&twice, "ConflictException");
    refused(
        &[
            "get-schedule",
            "--name",
            "good",
            "--group-name",
            "elsewhere",
        ],
        "ResourceNotFoundException",
    );
    refused(
        &["delete-schedule", "--name", "nope"],
        "ResourceNotFoundException",
    );
    // Disabled, it is listed as such and never fires.
    s.aws_service(
        "scheduler",
        &[
            "update-schedule",
            "--name",
            "good",
            "--schedule-expression",
            "rate(1 minute)",
            "--flexible-time-window",
            "Mode=OFF",
            "--state",
            "DISABLED",
            "--target",
            &target,
        ],
    )
    .ok();
    let listed = s
        .aws_service("scheduler", &["list-schedules", "--state", "DISABLED"])
        .ok();
    assert_eq!(listed["Schedules"][0]["Name"], "good");
    assert_eq!(listed["Schedules"].as_array().unwrap().len(), 1);
}
