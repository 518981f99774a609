//! Choosing the accelerator: KVM where it really is hardware virtualisation,
//! TCG otherwise.
//!
//! Some hosts (cloud VMs using the `kvm_pvm` module) expose a `/dev/kvm` that
//! answers the KVM API but emulates the guest instruction by instruction; an
//! ordinary guest dies there on its first SSE instruction. So the mere
//! existence of `/dev/kvm` proves nothing: [`HostFacts::gather`] collects what
//! can be observed and [`choose`] decides, purely, so the decision is tested
//! for every combination.

use std::fmt;
use std::fs::OpenOptions;
use std::os::fd::AsFd;
use std::path::Path;
use std::str::FromStr;

use thiserror::Error;

/// The only KVM API version Linux has ever reported.
const KVM_API_VERSION: i32 = 12;

/// The accelerator a VM runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// QEMU's portable instruction translator.
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        })
    }
}

/// What the operator asked for (`--accel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccelRequest {
    /// Probe: KVM when usable, TCG otherwise.
    #[default]
    Auto,
    /// KVM or nothing.
    Kvm,
    /// TCG even where KVM would work.
    Tcg,
}

impl FromStr for AccelRequest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(AccelRequest::Auto),
            "kvm" => Ok(AccelRequest::Kvm),
            "tcg" => Ok(AccelRequest::Tcg),
            other => Err(format!(
                "unknown accelerator `{other}` (expected auto, kvm or tcg)"
            )),
        }
    }
}

/// What opening `/dev/kvm` showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevKvm {
    /// There is no `/dev/kvm`.
    Missing,
    /// It exists but could not be opened read-write (the reason, from the OS).
    Unopenable(String),
    /// It opened; `KVM_GET_API_VERSION` returned this (or failed: `None`).
    Opened {
        /// The ioctl's result, `None` when the ioctl itself failed.
        api_version: Option<i32>,
    },
}

/// Everything observable about KVM on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The device node.
    pub dev_kvm: DevKvm,
    /// `/sys/module/kvm_pvm` exists: `/dev/kvm` is not hardware
    /// virtualisation.
    pub kvm_pvm: bool,
    /// `/sys/module/kvm_intel` exists.
    pub kvm_intel: bool,
    /// `/sys/module/kvm_amd` exists.
    pub kvm_amd: bool,
}

impl HostFacts {
    /// Probes this host. Never fails: whatever cannot be observed counts as
    /// absent.
    pub fn gather() -> HostFacts {
        let module = |name: &str| Path::new("/sys/module").join(name).exists();
        HostFacts {
            dev_kvm: probe_dev_kvm(Path::new("/dev/kvm")),
            kvm_pvm: module("kvm_pvm"),
            kvm_intel: module("kvm_intel"),
            kvm_amd: module("kvm_amd"),
        }
    }

    /// Why KVM cannot be used here, or `Ok` with a description of what works.
    fn kvm_usability(&self) -> Result<String, String> {
        let api_version = match &self.dev_kvm {
            DevKvm::Missing => return Err("/dev/kvm does not exist".into()),
            DevKvm::Unopenable(why) => {
                return Err(format!("/dev/kvm cannot be opened read-write: {why}"))
            }
            DevKvm::Opened { api_version } => *api_version,
        };
        if self.kvm_pvm {
            return Err("/dev/kvm is the kvm_pvm module (not hardware virtualisation)".into());
        }
        match api_version {
            Some(KVM_API_VERSION) => {}
            Some(other) => {
                return Err(format!(
                    "KVM_GET_API_VERSION returned {other}, expected {KVM_API_VERSION}"
                ))
            }
            None => return Err("the KVM_GET_API_VERSION ioctl on /dev/kvm failed".into()),
        }
        let module = match (self.kvm_intel, self.kvm_amd) {
            (true, _) => "kvm_intel",
            (false, true) => "kvm_amd",
            (false, false) => {
                return Err(
                    "neither kvm_intel nor kvm_amd is loaded (no hardware virtualisation)".into(),
                )
            }
        };
        Ok(format!(
            "/dev/kvm works ({module}, API version {KVM_API_VERSION})"
        ))
    }
}

fn probe_dev_kvm(path: &Path) -> DevKvm {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return DevKvm::Missing,
        Err(e) => return DevKvm::Unopenable(e.to_string()),
    };
    DevKvm::Opened {
        api_version: crate::sys::kvm_api_version(file.as_fd()),
    }
}

/// The accelerator chosen and why, for the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The accelerator to use.
    pub accel: Accel,
    /// A human-readable reason.
    pub reason: String,
}

/// Why the requested accelerator cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AccelError {
    /// `--accel kvm` on a host where KVM is not usable.
    #[error("KVM was requested but is not usable: {0}")]
    KvmUnusable(String),
}

/// Decides the accelerator from the host's facts and the operator's request.
pub fn choose(facts: &HostFacts, requested: AccelRequest) -> Result<Choice, AccelError> {
    let usable = facts.kvm_usability();
    match (requested, usable) {
        (AccelRequest::Tcg, _) => Ok(Choice {
            accel: Accel::Tcg,
            reason: "TCG was requested".into(),
        }),
        (AccelRequest::Kvm, Ok(why)) => Ok(Choice {
            accel: Accel::Kvm,
            reason: format!("KVM was requested and {why}"),
        }),
        (AccelRequest::Kvm, Err(why)) => Err(AccelError::KvmUnusable(why)),
        (AccelRequest::Auto, Ok(why)) => Ok(Choice {
            accel: Accel::Kvm,
            reason: why,
        }),
        (AccelRequest::Auto, Err(why)) => Ok(Choice {
            accel: Accel::Tcg,
            reason: format!("using TCG: {why}"),
        }),
    }
}

/// Probes this host, decides, and logs the decision.
pub fn detect(requested: AccelRequest) -> Result<Choice, AccelError> {
    let facts = HostFacts::gather();
    tracing::debug!(?facts, "accelerator probe");
    let choice = choose(&facts, requested)?;
    tracing::info!(accel = %choice.accel, reason = %choice.reason, "accelerator chosen");
    Ok(choice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn real_kvm() -> HostFacts {
        HostFacts {
            dev_kvm: DevKvm::Opened {
                api_version: Some(12),
            },
            kvm_pvm: false,
            kvm_intel: true,
            kvm_amd: false,
        }
    }

    #[test]
    fn real_kvm_is_chosen_automatically() {
        let choice = choose(&real_kvm(), AccelRequest::Auto).unwrap();
        assert_eq!(choice.accel, Accel::Kvm);
        assert!(choice.reason.contains("kvm_intel"), "{}", choice.reason);
        let amd = HostFacts {
            kvm_intel: false,
            kvm_amd: true,
            ..real_kvm()
        };
        assert_eq!(choose(&amd, AccelRequest::Kvm).unwrap().accel, Accel::Kvm);
    }

    #[test]
    fn tcg_can_always_be_forced() {
        let choice = choose(&real_kvm(), AccelRequest::Tcg).unwrap();
        assert_eq!(choice.accel, Accel::Tcg);
    }

    #[test]
    fn each_defect_falls_back_to_tcg_with_its_reason() {
        let cases = [
            (
                HostFacts {
                    dev_kvm: DevKvm::Missing,
                    ..real_kvm()
                },
                "/dev/kvm does not exist",
            ),
            (
                HostFacts {
                    dev_kvm: DevKvm::Unopenable("Permission denied".into()),
                    ..real_kvm()
                },
                "cannot be opened read-write: Permission denied",
            ),
            (
                HostFacts {
                    kvm_pvm: true,
                    ..real_kvm()
                },
                "/dev/kvm is the kvm_pvm module (not hardware virtualisation)",
            ),
            (
                HostFacts {
                    dev_kvm: DevKvm::Opened {
                        api_version: Some(11),
                    },
                    ..real_kvm()
                },
                "returned 11",
            ),
            (
                HostFacts {
                    dev_kvm: DevKvm::Opened { api_version: None },
                    ..real_kvm()
                },
                "ioctl on /dev/kvm failed",
            ),
            (
                HostFacts {
                    kvm_intel: false,
                    ..real_kvm()
                },
                "neither kvm_intel nor kvm_amd",
            ),
        ];
        for (facts, why) in cases {
            let choice = choose(&facts, AccelRequest::Auto).unwrap();
            assert_eq!(choice.accel, Accel::Tcg, "{facts:?}");
            assert!(choice.reason.contains(why), "{}", choice.reason);
            match choose(&facts, AccelRequest::Kvm) {
                Err(AccelError::KvmUnusable(reason)) => assert!(reason.contains(why)),
                other => panic!("forced KVM on {facts:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn pvm_is_reported_even_if_a_vendor_module_is_loaded() {
        // kvm_pvm can coexist with a stub kvm_intel; pvm must still win.
        let facts = HostFacts {
            kvm_pvm: true,
            ..real_kvm()
        };
        let err = choose(&facts, AccelRequest::Kvm).unwrap_err();
        assert_eq!(
            err.to_string(),
            "KVM was requested but is not usable: /dev/kvm is the kvm_pvm module (not hardware virtualisation)"
        );
    }

    #[test]
    fn requests_parse() {
        assert_eq!("auto".parse(), Ok(AccelRequest::Auto));
        assert_eq!("kvm".parse(), Ok(AccelRequest::Kvm));
        assert_eq!("tcg".parse(), Ok(AccelRequest::Tcg));
        assert!("xen".parse::<AccelRequest>().is_err());
    }
}
