//! What a Linux program's VM is given, apart from its pack: the generic
//! kernel image that runs it ([`find_kernel`]), its program, arguments and
//! `/tmp` ([`LinuxBoot`]), and its environment: for a function, Lambda's
//! reserved variables first, then the function's own
//! ([`function_env`]); for `mayfly exec`, the caller's own with a few
//! defaults ([`exec_env`]).

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The kernel image's file name in `target/images`.
pub const KERNEL_FILE: &str = "linux.elf";
/// Environment variable naming the kernel image (below `--linux-kernel`).
pub const KERNEL_ENV: &str = "MAYFLY_LINUX_KERNEL";
/// A function's program, as its VM sees it.
pub const FUNCTION_PROGRAM: &str = "/var/task/bootstrap";
/// `LAMBDA_TASK_ROOT`: where the package is.
pub const TASK_ROOT: &str = "/var/task";
/// `LAMBDA_RUNTIME_DIR`.
pub const RUNTIME_DIR: &str = "/var/runtime";
/// Lambda's `PATH`.
pub const PATH: &str = "/usr/local/bin:/usr/bin/:/bin:/opt/bin";
/// Lambda's `LANG`.
pub const LANG: &str = "en_US.UTF-8";
/// Lambda's `TZ`.
pub const TZ: &str = ":UTC";

/// The keys Lambda sets itself and refuses in a function's configuration
/// ("Reserved keys used in this request"). `PATH`, `LANG`, `TZ` and
/// `LD_LIBRARY_PATH` are not among them: a function may change them.
pub const RESERVED_KEYS: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

/// The reserved keys among `env`, in its order.
pub fn reserved_keys_in<'a>(env: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    env.into_iter()
        .filter(|key| RESERVED_KEYS.contains(key))
        .collect()
}

/// How the VM running a Linux program is set up, beyond a native image's
/// settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxBoot {
    /// The pack, given to QEMU as `-initrd`.
    pub pack: PathBuf,
    /// The program, an absolute path in the guest.
    pub program: String,
    /// Its arguments, `argv[0]` first.
    pub args: Vec<String>,
    /// `/tmp`'s size, in MB.
    pub tmp_mb: u32,
    /// For a function: what its reserved variables say; the VM layer puts
    /// them before the function's own ([`function_env`]). `None` (`mayfly
    /// exec`): the environment is used as given.
    pub lambda: Option<LambdaEnv>,
}

impl LinuxBoot {
    /// A function's: `/var/task/bootstrap` with itself as `argv[0]`.
    pub fn function(pack: PathBuf, tmp_mb: u32, lambda: LambdaEnv) -> LinuxBoot {
        LinuxBoot {
            pack,
            program: FUNCTION_PROGRAM.to_string(),
            args: vec![FUNCTION_PROGRAM.to_string()],
            tmp_mb,
            lambda: Some(lambda),
        }
    }
}

/// How a function's VM came to be (`AWS_LAMBDA_INITIALIZATION_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitializationType {
    /// Booted for its event.
    OnDemand,
    /// Booted ahead, for provisioned concurrency.
    ProvisionedConcurrency,
}

impl InitializationType {
    /// Lambda's value.
    pub fn as_str(self) -> &'static str {
        match self {
            InitializationType::OnDemand => "on-demand",
            InitializationType::ProvisionedConcurrency => "provisioned-concurrency",
        }
    }
}

/// What a function's reserved variables say that the VM layer does not
/// know itself (it knows the name, version, memory and the runtime API's
/// address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LambdaEnv {
    /// The host's region.
    pub region: String,
    /// The function's `Handler`.
    pub handler: String,
    /// The function's `Runtime` (`provided.al2023`).
    pub runtime: String,
    /// On demand or provisioned.
    pub initialization_type: InitializationType,
    /// `AWS_LAMBDA_LOG_STREAM_NAME` ([`log_stream_name`]).
    pub log_stream: String,
}

/// What the VM layer knows of a function for [`function_env`].
#[derive(Debug, Clone, Copy)]
pub struct FunctionFacts<'a> {
    /// `host:port` of the runtime API, an IP literal.
    pub runtime_api: &'a str,
    /// The function's name.
    pub name: &'a str,
    /// Its version.
    pub version: &'a str,
    /// Its memory, in MB.
    pub memory_mb: u32,
}

/// A function's whole environment: Lambda's variables for a custom
/// runtime, in Lambda's order, then `own` in its order. `PATH`, `LANG`
/// and `TZ` are Lambda's unless `own` sets them (then only `own`'s copy
/// is there: a program's `getenv` finds the first).
pub fn function_env(
    lambda: &LambdaEnv,
    facts: FunctionFacts<'_>,
    own: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", facts.runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", facts.name.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", facts.version.to_string()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            facts.memory_mb.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", facts.name),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", lambda.log_stream.clone()),
        ("AWS_REGION", lambda.region.clone()),
        ("AWS_DEFAULT_REGION", lambda.region.clone()),
        (
            "AWS_EXECUTION_ENV",
            format!("AWS_Lambda_{}", lambda.runtime),
        ),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE",
            lambda.initialization_type.as_str().to_string(),
        ),
        ("_HANDLER", lambda.handler.clone()),
        ("LAMBDA_TASK_ROOT", TASK_ROOT.to_string()),
        ("LAMBDA_RUNTIME_DIR", RUNTIME_DIR.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    push_defaults(&mut env, own, &[("PATH", PATH), ("LANG", LANG), ("TZ", TZ)]);
    // Reserved keys were refused in the configuration; one that reached
    // here anyway (an older store) must not shadow Lambda's.
    env.extend(
        own.iter()
            .filter(|(k, _)| !RESERVED_KEYS.contains(&k.as_str()))
            .cloned(),
    );
    env
}

/// `mayfly exec`'s environment: `PATH`, `LANG`, `TZ` and
/// `LAMBDA_TASK_ROOT` unless `own` sets them, then `own` in its order.
pub fn exec_env(own: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = Vec::new();
    push_defaults(
        &mut env,
        own,
        &[
            ("PATH", PATH),
            ("LANG", LANG),
            ("TZ", TZ),
            ("LAMBDA_TASK_ROOT", TASK_ROOT),
        ],
    );
    env.extend(own.iter().cloned());
    env
}

fn push_defaults(
    env: &mut Vec<(String, String)>,
    own: &[(String, String)],
    defaults: &[(&str, &str)],
) {
    for (key, value) in defaults {
        if !own.iter().any(|(k, _)| k == key) {
            env.push((key.to_string(), value.to_string()));
        }
    }
}

/// `AWS_LAMBDA_LOG_STREAM_NAME` as Lambda writes it:
/// `YYYY/MM/DD/[VERSION]` and 32 hex digits, the date in UTC.
pub fn log_stream_name(unix_seconds: u64, version: &str, id: u128) -> String {
    let (y, m, d) = mayfly_proto::date::civil_from_days((unix_seconds / 86_400) as i64);
    format!("{y:04}/{m:02}/{d:02}/[{version}]{id:032x}")
}

/// The generic kernel image could not be found.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("no Linux kernel image ({KERNEL_FILE}) found (looked at {}): build it with `cargo xtask images`, or name it with --linux-kernel PATH or {KERNEL_ENV}", looked.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
pub struct KernelNotFound {
    /// Where it was looked for.
    pub looked: Vec<PathBuf>,
}

/// Where the kernel image is looked for, in order: `explicit`
/// (`--linux-kernel`, the only place when given), `env` ([`KERNEL_ENV`]),
/// then `images/linux.elf` beside the directory of the running binary
/// (`target/release/mayfly` finds `target/images/linux.elf`; a test
/// binary in `target/debug/deps` looks one level higher too), the
/// binary's own `images/`, and `target/images` under `cwd`.
pub fn kernel_candidates(
    explicit: Option<&Path>,
    env: Option<&Path>,
    exe: Option<&Path>,
    cwd: Option<&Path>,
) -> Vec<PathBuf> {
    if let Some(path) = explicit {
        return vec![path.to_path_buf()];
    }
    let mut found = Vec::new();
    found.extend(env.map(Path::to_path_buf));
    if let Some(dir) = exe.and_then(Path::parent) {
        if let Some(up) = dir.parent() {
            found.push(up.join("images").join(KERNEL_FILE));
            if let Some(up2) = up.parent() {
                found.push(up2.join("images").join(KERNEL_FILE));
            }
        }
        found.push(dir.join("images").join(KERNEL_FILE));
    }
    found.extend(cwd.map(|d| d.join("target").join("images").join(KERNEL_FILE)));
    found.dedup();
    found
}

/// The first of [`kernel_candidates`] that is a file, made absolute.
pub fn find_kernel_in(candidates: Vec<PathBuf>) -> Result<PathBuf, KernelNotFound> {
    match candidates.iter().find(|p| p.is_file()) {
        Some(path) => Ok(std::path::absolute(path).unwrap_or_else(|_| path.clone())),
        None => Err(KernelNotFound { looked: candidates }),
    }
}

/// The kernel image for this process: `explicit`, else as
/// [`kernel_candidates`] looks from the running binary and the current
/// directory.
pub fn find_kernel(explicit: Option<&Path>) -> Result<PathBuf, KernelNotFound> {
    let env = std::env::var_os(KERNEL_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let exe = std::env::current_exe().ok();
    let cwd = std::env::current_dir().ok();
    find_kernel_in(kernel_candidates(
        explicit,
        env.as_deref(),
        exe.as_deref(),
        cwd.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lambda() -> LambdaEnv {
        LambdaEnv {
            region: "eu-west-1".into(),
            handler: "bootstrap".into(),
            runtime: "provided.al2023".into(),
            initialization_type: InitializationType::OnDemand,
            log_stream: "2025/01/02/[$LATEST]00".into(),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reserved_variables_come_first_in_lambdas_order() {
        let own = pairs(&[("ZED", "1"), ("ALPHA", "2"), ("LANG", "C.UTF-8")]);
        let facts = FunctionFacts {
            runtime_api: "10.0.2.2:9001",
            name: "echo",
            version: "$LATEST",
            memory_mb: 256,
        };
        let env = function_env(&lambda(), facts, &own);
        let expected = pairs(&[
            ("AWS_LAMBDA_RUNTIME_API", "10.0.2.2:9001"),
            ("AWS_LAMBDA_FUNCTION_NAME", "echo"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/echo"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2025/01/02/[$LATEST]00"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            ("_HANDLER", "bootstrap"),
            ("LAMBDA_TASK_ROOT", "/var/task"),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
            ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin"),
            ("TZ", ":UTC"),
            // The function's own, in their order; its LANG replaces Lambda's.
            ("ZED", "1"),
            ("ALPHA", "2"),
            ("LANG", "C.UTF-8"),
        ]);
        assert_eq!(env, expected);
        // A reserved key that got through is dropped, never doubled.
        let env = function_env(&lambda(), facts, &pairs(&[("AWS_REGION", "x")]));
        assert_eq!(env.iter().filter(|(k, _)| k == "AWS_REGION").count(), 1);
        let provisioned = LambdaEnv {
            initialization_type: InitializationType::ProvisionedConcurrency,
            ..lambda()
        };
        let env = function_env(&provisioned, facts, &[]);
        assert!(env.contains(&(
            "AWS_LAMBDA_INITIALIZATION_TYPE".into(),
            "provisioned-concurrency".into()
        )));
    }

    #[test]
    fn exec_gets_a_few_defaults_and_its_own() {
        assert_eq!(
            exec_env(&pairs(&[("A1", "x"), ("TZ", "Europe/Paris")])),
            pairs(&[
                ("PATH", PATH),
                ("LANG", LANG),
                ("LAMBDA_TASK_ROOT", "/var/task"),
                ("A1", "x"),
                ("TZ", "Europe/Paris"),
            ])
        );
    }

    #[test]
    fn reserved_keys_are_found() {
        assert_eq!(
            reserved_keys_in(["A", "AWS_REGION", "PATH", "_HANDLER", "TZ"]),
            ["AWS_REGION", "_HANDLER"]
        );
        assert!(reserved_keys_in(["LANG", "LD_LIBRARY_PATH"]).is_empty());
    }

    #[test]
    fn log_streams_are_named_as_lambda_names_them() {
        // 2024-02-29 12:00:00 UTC.
        assert_eq!(
            log_stream_name(1_709_208_000, "$LATEST", 0xabc),
            "2024/02/29/[$LATEST]00000000000000000000000000000abc"
        );
    }

    #[test]
    fn the_kernel_is_looked_for_beside_the_binary() {
        let exe = Path::new("/repo/target/release/mayfly");
        let candidates = kernel_candidates(None, None, Some(exe), Some(Path::new("/work")));
        assert_eq!(
            candidates,
            [
                PathBuf::from("/repo/target/images/linux.elf"),
                PathBuf::from("/repo/images/linux.elf"),
                PathBuf::from("/repo/target/release/images/linux.elf"),
                PathBuf::from("/work/target/images/linux.elf"),
            ]
        );
        let env = Path::new("/opt/k.elf");
        assert_eq!(
            kernel_candidates(None, Some(env), None, None),
            [PathBuf::from("/opt/k.elf")]
        );
        let explicit = Path::new("/x/linux.elf");
        assert_eq!(
            kernel_candidates(Some(explicit), Some(env), Some(exe), None),
            [PathBuf::from("/x/linux.elf")]
        );
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("target/images");
        std::fs::create_dir_all(&images).unwrap();
        let missing = find_kernel_in(kernel_candidates(None, None, None, Some(dir.path())));
        let err = missing.unwrap_err();
        assert!(err.to_string().contains("cargo xtask images"), "{err}");
        std::fs::write(images.join(KERNEL_FILE), b"").unwrap();
        assert_eq!(
            find_kernel_in(kernel_candidates(None, None, None, Some(dir.path()))).unwrap(),
            images.join(KERNEL_FILE)
        );
    }
}
