//! What is particular to a Linux program's VM: its boot configuration
//! and how its end reads.

use mayfly_proto::boot::BootConfig;
use mayfly_proto::exit::{self as guest_exit, ProcessEnd};
use mayfly_runner::linux::{function_env, FunctionFacts};

use super::{InvocationResult, VmTemplate};

/// The boot configuration of `template`'s VM. A Linux program's also
/// names the program, its arguments and `/tmp`, and a function's
/// environment is Lambda's reserved variables (the runtime API at the
/// host side's IP literal) followed by the function's own.
pub fn boot_config(template: &VmTemplate) -> BootConfig {
    let mut boot = BootConfig::new(&template.function_name, template.memory_mb);
    boot.function_version = template.function_version.clone();
    boot.env = template.env.clone();
    if let Some(linux) = &template.linux {
        boot.program = Some(linux.program.clone());
        boot.args = linux.args.clone();
        boot.tmp_mb = linux.tmp_mb;
        // The VM has no RTC: its wall clock starts from the host's.
        boot.host_clock_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        // Fresh entropy for this VM alone, in the environment file.
        let mut seed = [0u8; 32];
        seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        boot.seed = Some(seed);
        if let Some(lambda) = &linux.lambda {
            let runtime_api = format!(
                "{}:{}",
                std::net::Ipv4Addr::from(boot.host_ip),
                boot.api_port
            );
            let facts = FunctionFacts {
                runtime_api: &runtime_api,
                name: &template.function_name,
                version: &template.function_version,
                memory_mb: template.memory_mb,
            };
            boot.env = function_env(lambda, facts, &template.env);
        }
    }
    boot
}

/// How a Linux program's VM ended, when the guest's exit code says the
/// program ended by itself (an exit, a signal) or ran out of memory: the
/// kernel's last `mayfly: process ...` line says how, in Lambda's words.
/// `None` for any other ending.
pub fn linux_end(qemu_code: Option<i32>, log: &[u8]) -> Option<InvocationResult> {
    let code = guest_exit::guest_code(qemu_code?)?;
    let said = || {
        String::from_utf8_lossy(log)
            .lines()
            .rev()
            .filter_map(mayfly_proto::console::kernel_message)
            .find_map(ProcessEnd::parse)
    };
    match code {
        guest_exit::PROCESS_EXITED | guest_exit::PROCESS_KILLED => {
            Some(InvocationResult::ExitError(match said() {
                Some(end) => end.lambda_message(),
                None => "Runtime exited with error: exit status unknown".to_string(),
            }))
        }
        // As Lambda reports a runtime the kernel's OOM killer ended.
        guest_exit::OUT_OF_MEMORY => Some(InvocationResult::OutOfMemory(
            "Runtime exited with error: signal: killed".to_string(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linux_programs_end_is_read_from_its_last_kernel_line() {
        let status = |code: u8| Some(guest_exit::qemu_status(code));
        let log = b"hello from the program\nmayfly: process exited with status 3\n";
        assert_eq!(
            linux_end(status(guest_exit::PROCESS_EXITED), log),
            Some(InvocationResult::ExitError(
                "Runtime exited with error: exit status 3".into()
            ))
        );
        let log = b"mayfly: unsupported syscall foo (999)\nmayfly: process killed by signal 11 (segmentation fault)\ntrailing\n";
        let ended = linux_end(status(guest_exit::PROCESS_KILLED), log).unwrap();
        assert_eq!(ended.error_type(), Some("Runtime.ExitError"));
        assert_eq!(
            ended.error_message().unwrap(),
            "Runtime exited with error: signal: segmentation fault"
        );
        assert_eq!(
            linux_end(status(guest_exit::PROCESS_EXITED), b"no kernel line\n"),
            Some(InvocationResult::ExitError(
                "Runtime exited with error: exit status unknown".into()
            ))
        );
        let oom = linux_end(status(guest_exit::OUT_OF_MEMORY), b"").unwrap();
        assert_eq!(oom.error_type(), Some("Runtime.OutOfMemory"));
        assert_eq!(
            oom.error_message().unwrap(),
            "Runtime exited with error: signal: killed"
        );
        // Every other ending is the native one's.
        for code in [guest_exit::OK, guest_exit::FATAL, guest_exit::EXCEPTION] {
            assert_eq!(linux_end(status(code), log), None, "{code}");
        }
        assert_eq!(linux_end(Some(0), log), None);
        assert_eq!(linux_end(None, log), None);
    }

    #[test]
    fn a_linux_functions_boot_config() {
        use mayfly_runner::linux::{InitializationType, LambdaEnv, LinuxBoot};
        let mut template = VmTemplate {
            image: "/k/linux.elf".into(),
            linux: None,
            memory_mb: 256,
            env: vec![("GREETING".into(), "Hi".into())],
            function_name: "echo".into(),
            function_version: "3".into(),
            egress: None,
        };
        // A native image's is as before.
        let native = boot_config(&template);
        assert_eq!((native.program.as_deref(), native.env.len()), (None, 1));
        let lambda = LambdaEnv {
            region: "us-east-1".into(),
            handler: "bootstrap".into(),
            runtime: "provided.al2023".into(),
            initialization_type: InitializationType::OnDemand,
            log_stream: "s".into(),
        };
        template.linux = Some(LinuxBoot {
            tmp_mb: 1024,
            ..LinuxBoot::function("/p.pack".into(), 1024, lambda)
        });
        let boot = boot_config(&template);
        assert_eq!(boot.program.as_deref(), Some("/var/task/bootstrap"));
        assert_eq!(boot.args, ["/var/task/bootstrap"]);
        assert_eq!(boot.tmp_mb, 1024);
        assert_eq!(
            boot.env[0],
            ("AWS_LAMBDA_RUNTIME_API".into(), "10.0.2.2:9001".into())
        );
        assert_eq!(boot.env.last().unwrap(), &("GREETING".into(), "Hi".into()));
        // Never on the command line.
        assert!(!boot.command_line().contains("GREETING"));
        assert!(boot.env_file().contains("AWS_LAMBDA_FUNCTION_VERSION=3"));
    }
}
