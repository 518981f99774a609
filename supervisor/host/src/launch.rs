//! What a version's VM boots: its native image as it is, or, for a Linux
//! function, the generic Linux kernel image with the package's pack and
//! what the guest's Lambda environment needs ([`LinuxBoot`]).

use std::path::PathBuf;

use mayfly_runner::linux::{log_stream_name, InitializationType, LambdaEnv, LinuxBoot};
use mayfly_runner::EgressPlan;
use mayfly_store::Store;

use crate::images::Prepared;
use crate::names::DEFAULT_REGION;
use crate::settings::RunSettings;

/// What `function`'s VM may reach: the host's rules, narrowed by the
/// function's `mayfly:egress` tag if it has one (checked when it was set;
/// one that no longer parses, or a store that cannot be read, allows
/// nothing: egress fails closed).
pub fn egress_plan(store: &Store, host: &EgressPlan, function: &str) -> EgressPlan {
    let narrowed = match store.get_tags(function) {
        Ok(tags) => tags
            .get(mayfly_egress::FUNCTION_TAG)
            .map(|rules| mayfly_egress::Rules::parse_tag(rules).unwrap_or_default()),
        Err(error) => {
            tracing::warn!(function, %error, "cannot read the function's tags: no egress");
            Some(mayfly_egress::Rules::default())
        }
    };
    EgressPlan {
        function: narrowed,
        ..host.clone()
    }
}

/// The image QEMU boots and, for a Linux function, the rest.
pub fn boot_target(
    prepared: Prepared,
    settings: &RunSettings,
    version: &str,
    initialization_type: InitializationType,
) -> (PathBuf, Option<LinuxBoot>) {
    match prepared {
        Prepared::Native { image } => (image, None),
        Prepared::Linux { kernel, pack } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let lambda = LambdaEnv {
                region: DEFAULT_REGION.to_string(),
                handler: settings.handler.clone(),
                runtime: settings.runtime.clone(),
                initialization_type,
                log_stream: log_stream_name(now, version, uuid::Uuid::new_v4().as_u128()),
            };
            (
                kernel,
                Some(LinuxBoot::function(pack, settings.tmp_mb, lambda)),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_linux_function_boots_the_kernel_with_its_pack() {
        let settings = RunSettings::from_config(&serde_json::json!({
            "EphemeralStorage": {"Size": 1024}, "Handler": "h", "Runtime": "provided.al2023"
        }));
        let native = Prepared::Native {
            image: "/d/a.elf".into(),
        };
        assert_eq!(
            boot_target(native, &settings, "1", InitializationType::OnDemand),
            (PathBuf::from("/d/a.elf"), None)
        );
        let linux = Prepared::Linux {
            kernel: "/t/linux.elf".into(),
            pack: "/d/a.pack".into(),
        };
        let (image, boot) = boot_target(
            linux,
            &settings,
            "$LATEST",
            InitializationType::ProvisionedConcurrency,
        );
        let boot = boot.unwrap();
        assert_eq!(image, PathBuf::from("/t/linux.elf"));
        assert_eq!(boot.pack, PathBuf::from("/d/a.pack"));
        assert_eq!(
            (boot.program.as_str(), boot.args.as_slice()),
            (
                "/var/task/bootstrap",
                &["/var/task/bootstrap".to_string()][..]
            )
        );
        assert_eq!(boot.tmp_mb, 1024);
        let lambda = boot.lambda.unwrap();
        assert_eq!(
            (lambda.handler.as_str(), lambda.region.as_str()),
            ("h", "us-east-1")
        );
        assert_eq!(
            lambda.initialization_type,
            InitializationType::ProvisionedConcurrency
        );
        // YYYY/MM/DD/[$LATEST] and 32 hex digits.
        let stream = &lambda.log_stream;
        assert_eq!(stream.len(), 10 + 1 + 9 + 32, "{stream}");
        assert!(stream[11..].starts_with("[$LATEST]"), "{stream}");
    }
}
