//! The boot configuration a guest's kernel decodes from its command line,
//! and the runtime API's route table, both of which see guest-chosen text.

use mayfly_proto::boot::BootConfig;
use mayfly_proto::runtime::Route;

/// Whatever the command line holds, decoding never panics, and what it
/// accepts encodes to a line that decodes to the same configuration.
#[test]
fn boot_config_decode() {
    bolero::check!().for_each(|input: &[u8]| {
        let Ok(line) = core::str::from_utf8(input) else {
            return;
        };
        if let Ok(config) = BootConfig::decode(line) {
            let again = BootConfig::decode(&config.encode()).expect("an encoded config decodes");
            assert_eq!(again, config);
        }
    });
}

/// Any method and path the guest sends map to at most one route, without
/// panicking.
#[test]
fn runtime_route_parse() {
    bolero::check!().for_each(|input: &[u8]| {
        let text = String::from_utf8_lossy(input);
        let (method, path) = text.split_once(' ').unwrap_or(("GET", &text));
        let _ = Route::parse(method, path);
    });
}
