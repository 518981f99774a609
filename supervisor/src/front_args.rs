//! `mayfly serve`'s limits on clients: how long a request may take to
//! arrive and how many connections and large bodies are served at once
//! (see `mayfly_api::front`).

use std::time::Duration;

use clap::Args;
use mayfly_api::front::{open_files_limit, FrontLimits};

/// The flags, flattened into `mayfly serve`'s.
#[derive(Debug, Args)]
pub struct FrontArgs {
    /// A request's headers must arrive within this many milliseconds of
    /// its first byte, or the connection is closed.
    #[arg(long, value_name = "MS", default_value_t = millis(FrontLimits::default().header_timeout))]
    header_timeout_ms: u64,
    /// A request's body must arrive within this many milliseconds of its
    /// headers, or it is answered 408.
    #[arg(long, value_name = "MS", default_value_t = millis(FrontLimits::default().body_timeout))]
    body_timeout_ms: u64,
    /// A connection without a request for this many milliseconds is
    /// closed.
    #[arg(long, value_name = "MS", default_value_t = millis(FrontLimits::default().idle_timeout))]
    idle_timeout_ms: u64,
    /// The most client connections open at once; more are answered 429.
    #[arg(long, value_name = "N", default_value_t = FrontLimits::default().max_connections)]
    max_connections: usize,
    /// The most request bodies over 256 KiB (code uploads, large payloads)
    /// received at once; more are answered 429.
    #[arg(long, value_name = "N", default_value_t = FrontLimits::default().max_large_bodies)]
    max_large_requests: usize,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl FrontArgs {
    /// The limits, or which flag is out of range. The connection cap is
    /// lowered (and that reported) where the limit on open files would not
    /// hold it.
    pub fn limits(&self) -> Result<FrontLimits, String> {
        for (flag, value) in [
            ("--header-timeout-ms", self.header_timeout_ms),
            ("--body-timeout-ms", self.body_timeout_ms),
            ("--idle-timeout-ms", self.idle_timeout_ms),
            ("--max-connections", self.max_connections as u64),
            ("--max-large-requests", self.max_large_requests as u64),
        ] {
            if value == 0 {
                return Err(format!("{flag} must be at least 1"));
            }
        }
        let mut limits = FrontLimits {
            header_timeout: Duration::from_millis(self.header_timeout_ms),
            body_timeout: Duration::from_millis(self.body_timeout_ms),
            idle_timeout: Duration::from_millis(self.idle_timeout_ms),
            max_connections: self.max_connections,
            max_large_bodies: self.max_large_requests,
        };
        if let Some(note) = open_files_limit().and_then(|n| limits.fit_to_open_files(n)) {
            say!("mayfly: {note}");
        }
        Ok(limits)
    }
}

/// The limits in one line, for the start-up report.
pub fn describe(limits: &FrontLimits) -> String {
    format!(
        "requests: headers within {:?}, bodies within {:?}, idle connections closed after {:?}; \
         at most {} connections and {} large bodies at once",
        limits.header_timeout,
        limits.body_timeout,
        limits.idle_timeout,
        limits.max_connections,
        limits.max_large_bodies
    )
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        front: FrontArgs,
    }

    #[test]
    fn defaults_are_the_apis_and_zero_is_refused() {
        let cli = Cli::parse_from(["serve"]);
        let mut expected = FrontLimits::default();
        if let Some(n) = open_files_limit() {
            expected.fit_to_open_files(n);
        }
        assert_eq!(cli.front.limits().unwrap(), expected);
        let cli = Cli::parse_from([
            "serve",
            "--header-timeout-ms",
            "250",
            "--max-connections",
            "9",
        ]);
        let limits = cli.front.limits().unwrap();
        assert_eq!(limits.header_timeout, Duration::from_millis(250));
        assert_eq!(limits.max_connections, 9);
        let cli = Cli::parse_from(["serve", "--max-large-requests", "0"]);
        assert_eq!(
            cli.front.limits().unwrap_err(),
            "--max-large-requests must be at least 1"
        );
    }
}
