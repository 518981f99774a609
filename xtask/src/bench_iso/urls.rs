//! What a function URL adds to an invocation: the same native echo, on the
//! same server, invoked by turns through its `NONE` URL (the path form, on
//! the URL listener) and by a signed Invoke on the API, each on a fresh
//! loopback connection.

use std::path::Path;

use anyhow::Result;

use super::api::{Server, EVENT};
use super::stats::{fmt_ms, Summary};

/// The section's title.
pub const TITLE: &str = "Function URL request against a direct Invoke (native echo, same server)";

/// The function the section creates.
const FUNCTION: &str = "url-echo";

/// Both kinds of request, measured by turns.
#[derive(Debug, Clone, Copy)]
pub struct UrlOverhead {
    /// Signed Invoke on the API.
    pub invoke: Summary,
    /// A POST to the URL.
    pub url: Summary,
}

/// Creates the echo from `zip` with a public URL, then `runs` requests of
/// each kind, alternating, after two of each to warm the image cache.
pub fn measure(server: &Server, zip: &Path, runs: usize) -> Result<UrlOverhead> {
    server.create(FUNCTION, zip)?;
    let id = server.public_url(FUNCTION)?;
    for _ in 0..2 {
        server.invoke_fn(FUNCTION, None, false)?;
        server.call_url(&id, EVENT)?;
    }
    let (mut invoke, mut url) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
        invoke.push(ms(server.invoke_fn(FUNCTION, None, false)?.0));
        url.push(ms(server.call_url(&id, EVENT)?));
    }
    let summary = |samples: &[f64]| Summary::of(samples).expect("runs > 0");
    Ok(UrlOverhead {
        invoke: summary(&invoke),
        url: summary(&url),
    })
}

impl UrlOverhead {
    /// The section as a Markdown table and a sentence.
    pub fn markdown(&self) -> String {
        format!(
            "| request | n | p50 | p90 |\n|---|---:|---:|---:|\n\
             | Invoke (SigV4, API) | {} | {} | {} |\n\
             | function URL (`NONE`, path form) | {} | {} | {} |\n\n\
             The URL's p50 is {:.2}× the Invoke's ({:+.1} ms).\n",
            self.invoke.n,
            fmt_ms(self.invoke.p50),
            fmt_ms(self.invoke.p90),
            self.url.n,
            fmt_ms(self.url.p50),
            fmt_ms(self.url.p90),
            self.url.p50 / self.invoke.p50,
            self.url.p50 - self.invoke.p50,
        )
    }
}
