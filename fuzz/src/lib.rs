//! Fuzz targets for every parser that faces a guest or a client.
//!
//! Each target is a `#[test]` that runs with [`bolero`]: under `cargo test`
//! it replays the committed corpus (`src/__fuzz__/<module>__<test>/corpus`)
//! and then random inputs for about a second; under `cargo xtask fuzz` it
//! runs coverage-guided under libFuzzer for as long as asked. A target
//! checks more than "does not panic" where the parser has a property to
//! hold: what it accepts round-trips, what it refuses is refused for a
//! reason, and nothing it accepts exceeds the limits it enforces.
//!
//! The crate has no library code: the targets live in test-only modules,
//! so the instrumented build `cargo-bolero` makes links libFuzzer only into
//! this crate's test binary.

#[cfg(test)]
mod api_json;
#[cfg(test)]
mod boot;
#[cfg(test)]
mod function_url;
#[cfg(test)]
mod guest;
#[cfg(test)]
mod mapping_filter;
#[cfg(test)]
mod object_events;
#[cfg(test)]
mod package;
#[cfg(test)]
mod pgoutput;
#[cfg(test)]
mod runtime_api;
#[cfg(test)]
mod schedule;
#[cfg(test)]
mod sigv4;
#[cfg(test)]
mod vm_network;
