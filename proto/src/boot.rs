//! The boot configuration: everything a guest needs to know before it can
//! ask for its event. The settings are carried on the kernel command line
//! ([`BootConfig::command_line`]); the function's environment, which may
//! hold secrets, never is: it is a `fw_cfg` file named [`ENV_FW_CFG_NAME`]
//! ([`BootConfig::env_file`]), which QEMU reads from a file only the VM can
//! read and the guest reads over the `fw_cfg` ports.
//!
//! The format is a sequence of `key=value` tokens separated by single spaces,
//! the first being `mayfly=1` (the format's version). Values are
//! percent-encoded, so they never contain a space, `=` or a non-ASCII byte
//! and the line survives any boot loader unchanged. `env` may repeat, once
//! per variable, as `env=KEY=VALUE` with both halves encoded.
//!
//! ```
//! use mayfly_proto::boot::BootConfig;
//! let mut config = BootConfig::new("hello", 128);
//! config.env.push(("GREETING".into(), "Hi there".into()));
//! let line = config.encode();
//! assert!(line.starts_with("mayfly=1 "));
//! assert_eq!(BootConfig::decode(&line).unwrap(), config);
//! // As a VM gets it: the environment apart from the command line.
//! let (cmdline, env) = (config.command_line(), config.env_file());
//! assert!(!cmdline.contains("GREETING"));
//! assert_eq!(BootConfig::decode_with_env(&cmdline, &env).unwrap(), config);
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::limits::ENV_MAX_BYTES;
use crate::net;

/// Version of the command-line format written by [`BootConfig::encode`].
pub const FORMAT_VERSION: u32 = 1;

/// The `fw_cfg` file that holds the environment (`opt/` is the prefix
/// QEMU leaves to users).
pub const ENV_FW_CFG_NAME: &str = "opt/mayfly/env";

/// Network and function settings for one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    /// MAC address of the guest's virtio-net card.
    pub guest_mac: [u8; 6],
    /// The guest's IPv4 address.
    pub guest_ip: [u8; 4],
    /// The host side's IPv4 address: where the runtime API listens.
    pub host_ip: [u8; 4],
    /// Prefix length of the VM's private network.
    pub prefix_len: u8,
    /// TCP port of the runtime API at `host_ip`.
    pub api_port: u16,
    /// Name of the function.
    pub function_name: String,
    /// Version of the function (`$LATEST` or a number).
    pub function_version: String,
    /// Memory given to the VM, in MB.
    pub memory_mb: u32,
    /// Environment variables, in the order they were given. For a Linux
    /// program this is its whole environment (the host puts Lambda's
    /// reserved variables first).
    pub env: Vec<(String, String)>,
    /// The Linux program to run, as an absolute path in the guest's file
    /// system (`/var/task/bootstrap` for a function); `None` for a native
    /// image, which ignores it.
    pub program: Option<String>,
    /// The Linux program's arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// Size of the Linux program's writable `/tmp`, in MB (the function's
    /// `EphemeralStorage.Size`).
    pub tmp_mb: u32,
    /// The host's clock when the VM was started, in milliseconds since the
    /// Unix epoch (0 if unknown): a Linux program's wall clock starts here
    /// (the VM has no RTC).
    pub host_clock_ms: u64,
    /// A fresh random seed for this VM alone (a Linux program's
    /// randomness is keyed from it); carried in the environment file, never
    /// on the command line.
    pub seed: Option<[u8; 32]>,
}

/// `/tmp`'s size when none is given: Lambda's default ephemeral storage.
pub const DEFAULT_TMP_MB: u32 = 512;

impl BootConfig {
    /// A configuration with Mayfly's default private network (see
    /// [`net`]: guest 10.0.2.15/24, host 10.0.2.2, port 9001) and no
    /// environment.
    pub fn new(function_name: &str, memory_mb: u32) -> BootConfig {
        BootConfig {
            guest_mac: net::GUEST_MAC,
            guest_ip: net::GUEST_IP,
            host_ip: net::HOST_IP,
            prefix_len: net::PREFIX_LEN,
            api_port: net::API_PORT,
            function_name: function_name.to_string(),
            function_version: "$LATEST".to_string(),
            memory_mb,
            env: Vec::new(),
            program: None,
            args: Vec::new(),
            tmp_mb: DEFAULT_TMP_MB,
            host_clock_ms: 0,
            seed: None,
        }
    }

    /// Writes the whole configuration, environment included, in the
    /// command-line format.
    pub fn encode(&self) -> String {
        let mut out = self.command_line();
        if !self.env.is_empty() {
            out.push(' ');
            out.push_str(&self.env_file());
        }
        out
    }

    /// The environment as the `fw_cfg` file holds it: `env=` tokens, and
    /// the seed as a `seed=` token (hex).
    pub fn env_file(&self) -> String {
        let mut out = String::new();
        if let Some(seed) = &self.seed {
            out.push_str("seed=");
            for b in seed {
                let _ = write!(out, "{b:02x}");
            }
        }
        for (key, value) in &self.env {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str("env=");
            percent_encode(key, &mut out);
            out.push('=');
            percent_encode(value, &mut out);
        }
        out
    }

    /// Reads a command line and, apart, the environment file.
    pub fn decode_with_env(line: &str, env_file: &str) -> Result<BootConfig, BootConfigError> {
        let mut config = BootConfig::decode(line)?;
        for token in env_file.split_ascii_whitespace() {
            if let Some(value) = token.strip_prefix("env=") {
                config.env.push(decode_env_token(value)?);
            } else if let Some(hex) = token.strip_prefix("seed=") {
                config.seed = Some(parse_seed(hex)?);
            } else {
                return Err(BootConfigError::Invalid("env"));
            }
        }
        Ok(config)
    }

    /// The settings as a kernel command line: everything but the
    /// environment.
    pub fn command_line(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "mayfly={FORMAT_VERSION}");
        let m = self.guest_mac;
        let _ = write!(
            out,
            " mac={:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        );
        let _ = write!(out, " ip={}/{}", Ipv4(self.guest_ip), self.prefix_len);
        let _ = write!(out, " host={}", Ipv4(self.host_ip));
        let _ = write!(out, " port={}", self.api_port);
        let _ = write!(out, " mem={}", self.memory_mb);
        out.push_str(" fn=");
        percent_encode(&self.function_name, &mut out);
        out.push_str(" ver=");
        percent_encode(&self.function_version, &mut out);
        if let Some(program) = &self.program {
            out.push_str(" exec=");
            percent_encode(program, &mut out);
            for arg in &self.args {
                out.push_str(" arg=");
                percent_encode(arg, &mut out);
            }
        }
        if self.tmp_mb != DEFAULT_TMP_MB {
            let _ = write!(out, " tmp={}", self.tmp_mb);
        }
        if self.host_clock_ms != 0 {
            let _ = write!(out, " clock={}", self.host_clock_ms);
        }
        out
    }

    /// Reads a kernel command line written by [`encode`](Self::encode).
    /// Tokens that do not belong to the format (a boot loader may add its
    /// own) are ignored; a missing or malformed field is an error.
    pub fn decode(line: &str) -> Result<BootConfig, BootConfigError> {
        let mut version = None;
        let mut mac = None;
        let mut ip = None;
        let mut host = None;
        let mut port = None;
        let mut mem = None;
        let mut name = None;
        let mut ver = None;
        let mut env = Vec::new();
        let mut program = None;
        let mut args = Vec::new();
        let mut tmp_mb = DEFAULT_TMP_MB;
        let mut host_clock_ms = 0;
        for token in line.split_ascii_whitespace() {
            let Some((key, value)) = token.split_once('=') else {
                continue;
            };
            match key {
                "mayfly" => version = Some(parse_num::<u32>("mayfly", value)?),
                "mac" => mac = Some(parse_mac(value)?),
                "ip" => {
                    let (addr, prefix) = value
                        .split_once('/')
                        .ok_or(BootConfigError::Invalid("ip"))?;
                    let prefix = parse_num::<u8>("ip", prefix)?;
                    if prefix > 32 {
                        return Err(BootConfigError::Invalid("ip"));
                    }
                    ip = Some((parse_ipv4("ip", addr)?, prefix));
                }
                "host" => host = Some(parse_ipv4("host", value)?),
                "port" => port = Some(parse_num::<u16>("port", value)?),
                "mem" => mem = Some(parse_num::<u32>("mem", value)?),
                "fn" => name = Some(percent_decode("fn", value)?),
                "ver" => ver = Some(percent_decode("ver", value)?),
                "env" => env.push(decode_env_token(value)?),
                "exec" => program = Some(percent_decode("exec", value)?),
                "arg" => args.push(percent_decode("arg", value)?),
                "tmp" => tmp_mb = parse_num::<u32>("tmp", value)?,
                "clock" => host_clock_ms = parse_num::<u64>("clock", value)?,
                _ => {}
            }
        }
        match version {
            None => return Err(BootConfigError::Missing("mayfly")),
            Some(FORMAT_VERSION) => {}
            Some(other) => return Err(BootConfigError::UnsupportedVersion(other)),
        }
        let (guest_ip, prefix_len) = ip.ok_or(BootConfigError::Missing("ip"))?;
        Ok(BootConfig {
            guest_mac: mac.ok_or(BootConfigError::Missing("mac"))?,
            guest_ip,
            host_ip: host.ok_or(BootConfigError::Missing("host"))?,
            prefix_len,
            api_port: port.ok_or(BootConfigError::Missing("port"))?,
            function_name: name.ok_or(BootConfigError::Missing("fn"))?,
            function_version: ver.ok_or(BootConfigError::Missing("ver"))?,
            memory_mb: mem.ok_or(BootConfigError::Missing("mem"))?,
            env,
            program,
            args,
            tmp_mb,
            host_clock_ms,
            seed: None,
        })
    }

    /// Looks up an environment variable.
    pub fn env_var(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// 64 hex digits.
fn parse_seed(hex: &str) -> Result<[u8; 32], BootConfigError> {
    let mut seed = [0u8; 32];
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(BootConfigError::Invalid("seed"));
    }
    for (i, byte) in seed.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16)
            .map_err(|_| BootConfigError::Invalid("seed"))?;
    }
    Ok(seed)
}

/// `KEY=VALUE`, both halves percent-encoded.
fn decode_env_token(value: &str) -> Result<(String, String), BootConfigError> {
    let (k, v) = value
        .split_once('=')
        .ok_or(BootConfigError::Invalid("env"))?;
    Ok((percent_decode("env", k)?, percent_decode("env", v)?))
}

/// Why a command line is not a valid [`BootConfig`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootConfigError {
    /// A required field is absent.
    Missing(&'static str),
    /// A field is present but malformed.
    Invalid(&'static str),
    /// The line was written by a format version this build does not read.
    UnsupportedVersion(u32),
}

impl fmt::Display for BootConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootConfigError::Missing(field) => write!(f, "boot config field `{field}` is missing"),
            BootConfigError::Invalid(field) => {
                write!(f, "boot config field `{field}` is malformed")
            }
            BootConfigError::UnsupportedVersion(v) => {
                write!(
                    f,
                    "boot config format {v} is not supported (expected {FORMAT_VERSION})"
                )
            }
        }
    }
}

/// Why an environment is not acceptable to Lambda.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvError {
    /// A key does not match `[a-zA-Z]([a-zA-Z0-9_])+`.
    InvalidKey(String),
    /// The same key is given twice.
    DuplicateKey(String),
    /// Keys and values together exceed [`ENV_MAX_BYTES`].
    TooLarge(usize),
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvError::InvalidKey(k) => write!(
                f,
                "environment variable name `{k}` must match [a-zA-Z]([a-zA-Z0-9_])+"
            ),
            EnvError::DuplicateKey(k) => write!(f, "environment variable `{k}` is given twice"),
            EnvError::TooLarge(n) => write!(
                f,
                "environment variables total {n} bytes, over the limit of {ENV_MAX_BYTES}"
            ),
        }
    }
}

/// Checks an environment as Lambda does: valid names, no duplicates, and at
/// most [`ENV_MAX_BYTES`] of keys and values together.
///
/// ```
/// use mayfly_proto::boot::{validate_env, EnvError};
/// assert!(validate_env(&[("GREETING".into(), "Hi".into())]).is_ok());
/// assert!(matches!(validate_env(&[("1X".into(), "".into())]), Err(EnvError::InvalidKey(_))));
/// ```
pub fn validate_env(env: &[(String, String)]) -> Result<(), EnvError> {
    let mut total = 0;
    for (i, (key, value)) in env.iter().enumerate() {
        let mut chars = key.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || !rest_ok || key.len() < 2 {
            return Err(EnvError::InvalidKey(key.clone()));
        }
        if env[..i].iter().any(|(k, _)| k == key) {
            return Err(EnvError::DuplicateKey(key.clone()));
        }
        total += key.len() + value.len();
    }
    if total > ENV_MAX_BYTES {
        return Err(EnvError::TooLarge(total));
    }
    Ok(())
}

struct Ipv4([u8; 4]);

impl fmt::Display for Ipv4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0;
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

fn parse_num<T: core::str::FromStr>(
    field: &'static str,
    value: &str,
) -> Result<T, BootConfigError> {
    value.parse().map_err(|_| BootConfigError::Invalid(field))
}

fn parse_ipv4(field: &'static str, value: &str) -> Result<[u8; 4], BootConfigError> {
    let mut out = [0u8; 4];
    let mut parts = value.split('.');
    for byte in &mut out {
        *byte = parse_num(field, parts.next().ok_or(BootConfigError::Invalid(field))?)?;
    }
    if parts.next().is_some() {
        return Err(BootConfigError::Invalid(field));
    }
    Ok(out)
}

fn parse_mac(value: &str) -> Result<[u8; 6], BootConfigError> {
    let mut out = [0u8; 6];
    let mut parts = value.split(':');
    for byte in &mut out {
        let part = parts.next().ok_or(BootConfigError::Invalid("mac"))?;
        if part.len() != 2 {
            return Err(BootConfigError::Invalid("mac"));
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| BootConfigError::Invalid("mac"))?;
    }
    if parts.next().is_some() {
        return Err(BootConfigError::Invalid("mac"));
    }
    Ok(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'/' | b',')
}

fn percent_encode(value: &str, out: &mut String) {
    for &b in value.as_bytes() {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn percent_decode(field: &'static str, value: &str) -> Result<String, BootConfigError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(BootConfigError::Invalid(field))?;
            let hex = core::str::from_utf8(hex).map_err(|_| BootConfigError::Invalid(field))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| BootConfigError::Invalid(field))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BootConfigError::Invalid(field))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn round_trip_with_awkward_values() {
        let mut config = BootConfig::new("fn-1_x", 10240);
        config.function_version = "$LATEST".into();
        config.env = vec![
            ("A1".into(), "".into()),
            ("SPACES".into(), "a b=c%d\te".into()),
            ("UNICODE".into(), "héllo ✓".into()),
        ];
        let line = config.encode();
        assert!(!line.contains('\t'));
        assert!(line.is_ascii());
        assert_eq!(line.split(' ').count(), 8 + 3);
        assert_eq!(BootConfig::decode(&line).unwrap(), config);
        assert_eq!(config.env_var("SPACES"), Some("a b=c%d\te"));
    }

    #[test]
    fn a_linux_program_round_trips_with_its_arguments() {
        let mut config = BootConfig::new("f", 256);
        assert_eq!(config.tmp_mb, DEFAULT_TMP_MB);
        config.program = Some("/var/runtime/my test".into());
        config.args = vec!["my test".into(), "--flag=1".into(), "".into()];
        config.tmp_mb = 10240;
        let line = config.command_line();
        assert!(
            line.contains(
                " exec=/var/runtime/my%20test arg=my%20test arg=--flag%3D1 arg= tmp=10240"
            ),
            "{line}"
        );
        assert_eq!(BootConfig::decode(&line).unwrap(), config);
        config.seed = Some([0xab; 32]);
        let line = config.command_line();
        assert!(!line.contains("abab"), "the seed is secret: {line}");
        let env = config.env_file();
        assert!(env.starts_with("seed=abab"), "{env}");
        assert_eq!(BootConfig::decode_with_env(&line, &env).unwrap(), config);
        assert_eq!(
            BootConfig::decode_with_env(&line, "seed=12"),
            Err(BootConfigError::Invalid("seed"))
        );
        let native = BootConfig::new("f", 128);
        assert!(!native.command_line().contains("exec="));
        assert!(!native.command_line().contains("tmp="));
    }

    #[test]
    fn the_environment_is_never_on_the_command_line() {
        let mut config = BootConfig::new("f", 128);
        config
            .env
            .push(("DB_PASSWORD".into(), "s3cret value=1".into()));
        config.env.push(("B".into(), String::new()));
        let line = config.command_line();
        assert!(
            !line.contains("DB_PASSWORD") && !line.contains("s3cret"),
            "{line}"
        );
        let env = config.env_file();
        assert_eq!(env, "env=DB_PASSWORD=s3cret%20value%3D1 env=B=");
        assert_eq!(BootConfig::decode_with_env(&line, &env).unwrap(), config);
        assert_eq!(BootConfig::decode_with_env(&line, "").unwrap().env, []);
        assert_eq!(
            BootConfig::decode_with_env(&line, "mac=00:00:00:00:00:00"),
            Err(BootConfigError::Invalid("env"))
        );
    }

    #[test]
    fn ignores_foreign_tokens() {
        let config = BootConfig::new("f", 128);
        let line = alloc::format!("console=ttyS0 quiet {} extra", config.encode());
        assert_eq!(BootConfig::decode(&line).unwrap(), config);
    }

    #[test]
    fn rejects_bad_lines() {
        let good = BootConfig::new("f", 128).encode();
        assert_eq!(
            BootConfig::decode(&good.replace("mayfly=1", "")),
            Err(BootConfigError::Missing("mayfly"))
        );
        assert_eq!(
            BootConfig::decode(&good.replace("mayfly=1", "mayfly=9")),
            Err(BootConfigError::UnsupportedVersion(9))
        );
        assert_eq!(
            BootConfig::decode(&good.replace("ip=10.0.2.15/24", "ip=10.0.2/24")),
            Err(BootConfigError::Invalid("ip"))
        );
        assert_eq!(
            BootConfig::decode(&good.replace("ip=10.0.2.15/24", "ip=10.0.2.15/33")),
            Err(BootConfigError::Invalid("ip"))
        );
        assert_eq!(
            BootConfig::decode(&good.replace("mem=128", "mem=lots")),
            Err(BootConfigError::Invalid("mem"))
        );
        assert_eq!(
            BootConfig::decode(&good.replace("fn=f", "fn=%F")),
            Err(BootConfigError::Invalid("fn"))
        );
        assert_eq!(
            BootConfig::decode(&good.replace("fn=f", "fn=%FF")),
            Err(BootConfigError::Invalid("fn"))
        );
        assert_eq!(
            BootConfig::decode(&good.replace("mac=02:4d:46:00:00:02", "mac=02:4d")),
            Err(BootConfigError::Invalid("mac"))
        );
    }

    #[test]
    fn env_limits() {
        let big = vec![("BIG".to_string(), "x".repeat(ENV_MAX_BYTES - 3))];
        assert_eq!(validate_env(&big), Ok(()));
        let too_big = vec![("BIG".to_string(), "x".repeat(ENV_MAX_BYTES - 2))];
        assert_eq!(
            validate_env(&too_big),
            Err(EnvError::TooLarge(ENV_MAX_BYTES + 1))
        );
        let dup = vec![
            ("AB".to_string(), String::new()),
            ("AB".to_string(), String::new()),
        ];
        assert_eq!(validate_env(&dup), Err(EnvError::DuplicateKey("AB".into())));
        for bad in ["", "A", "_AB", "A-B", "AÉ"] {
            let env = vec![(bad.to_string(), String::new())];
            assert!(
                matches!(validate_env(&env), Err(EnvError::InvalidKey(_))),
                "{bad}"
            );
        }
    }
}
