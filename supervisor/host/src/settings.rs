//! What the engine reads out of stored configuration, parsed once into
//! types: a version's run settings and a function's async settings.

use mayfly_store::Store;
use serde_json::Value;

/// Memory of a function that names none, in MB (Lambda's default).
pub const DEFAULT_MEMORY_MB: u32 = mayfly_proto::limits::DEFAULT_MEMORY_MB;
/// Timeout of a function that names none, in seconds (Lambda's default).
pub const DEFAULT_TIMEOUT_S: u32 = mayfly_proto::limits::DEFAULT_TIMEOUT_S;

/// `/tmp` of a Linux function that names no `EphemeralStorage`, in MB.
pub const DEFAULT_EPHEMERAL_MB: u32 = mayfly_proto::limits::DEFAULT_EPHEMERAL_MB;

/// A whole number of the stored configuration, or `default`.
fn number(config: &Value, key: &str, default: u32) -> u32 {
    config
        .get(key)
        .and_then(Value::as_u64)
        .map(|n| n as u32)
        .unwrap_or(default)
}

/// What an invocation needs from a version's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSettings {
    /// Memory in MB.
    pub memory_mb: u32,
    /// Timeout in seconds.
    pub timeout_s: u32,
    /// Environment variables.
    pub env: Vec<(String, String)>,
    /// `EphemeralStorage.Size`: a Linux function's `/tmp`, in MB.
    pub tmp_mb: u32,
    /// `Handler` (`_HANDLER` for a Linux function).
    pub handler: String,
    /// `Runtime` (`AWS_EXECUTION_ENV` is `AWS_Lambda_` and it).
    pub runtime: String,
}

impl RunSettings {
    /// Reads the run settings out of a version's stored settings (checked
    /// when they were stored).
    pub fn from_config(settings: &Value) -> RunSettings {
        let env = settings
            .pointer("/Environment/Variables")
            .and_then(Value::as_object)
            .map(|vars| {
                vars.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let text = |key: &str, default: &str| {
            settings
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_string()
        };
        RunSettings {
            memory_mb: number(settings, "MemorySize", DEFAULT_MEMORY_MB),
            timeout_s: number(settings, "Timeout", DEFAULT_TIMEOUT_S),
            env,
            tmp_mb: settings
                .pointer("/EphemeralStorage/Size")
                .and_then(Value::as_u64)
                .map_or(DEFAULT_EPHEMERAL_MB, |n| n as u32),
            handler: text("Handler", "bootstrap"),
            runtime: text("Runtime", "provided.al2023"),
        }
    }

    /// The timeout as a duration.
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.timeout_s))
    }
}

/// What an event's processing needs from its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AsyncSettings {
    /// `MaximumRetryAttempts`.
    pub max_retries: u32,
    /// `MaximumEventAgeInSeconds`.
    pub max_age_s: u32,
    /// `DestinationConfig.OnSuccess.Destination`: a function ARN.
    pub on_success: Option<String>,
    /// `DestinationConfig.OnFailure.Destination`: a function ARN.
    pub on_failure: Option<String>,
}

impl AsyncSettings {
    /// Reads the settings out of a stored event invoke configuration.
    pub fn from_config(config: &Value) -> AsyncSettings {
        let destination = |which: &str| {
            config
                .pointer(&format!("/DestinationConfig/{which}/Destination"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        AsyncSettings {
            max_retries: number(
                config,
                "MaximumRetryAttempts",
                mayfly_store::DEFAULT_MAX_RETRIES,
            ),
            max_age_s: number(
                config,
                "MaximumEventAgeInSeconds",
                mayfly_store::DEFAULT_MAX_AGE_S,
            ),
            on_success: destination("OnSuccess"),
            on_failure: destination("OnFailure"),
        }
    }

    /// The settings in force for an invocation of `function:qualifier`.
    pub fn lookup(store: &Store, function: &str, qualifier: &str) -> AsyncSettings {
        match store.get_event_invoke_config(function, qualifier) {
            Ok(config) => AsyncSettings::from_config(&config.config),
            Err(_) => AsyncSettings::from_config(&Value::Null),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn run_settings_default_to_lambdas() {
        assert_eq!(
            RunSettings::from_config(&json!({})),
            RunSettings {
                memory_mb: 128,
                timeout_s: 3,
                env: vec![],
                tmp_mb: 512,
                handler: "bootstrap".into(),
                runtime: "provided.al2023".into(),
            }
        );
        let set = RunSettings::from_config(&json!({
            "MemorySize": 512, "Timeout": 30,
            "Environment": {"Variables": {"GREETING": "Hi"}},
            "EphemeralStorage": {"Size": 2048},
            "Handler": "main", "Runtime": "provided.al2"
        }));
        assert_eq!(set.tmp_mb, 2048);
        assert_eq!(
            (set.handler.as_str(), set.runtime.as_str()),
            ("main", "provided.al2")
        );
        assert_eq!(set.memory_mb, 512);
        assert_eq!(set.timeout(), std::time::Duration::from_secs(30));
        assert_eq!(set.env, vec![("GREETING".into(), "Hi".into())]);
    }

    #[test]
    fn async_settings_default_to_lambdas() {
        let defaults = AsyncSettings::from_config(&Value::Null);
        assert_eq!(defaults.max_retries, 2);
        assert_eq!(defaults.max_age_s, 21600);
        assert_eq!(defaults.on_success, None);
        let set = AsyncSettings::from_config(&json!({
            "MaximumRetryAttempts": 0,
            "MaximumEventAgeInSeconds": 60,
            "DestinationConfig": {"OnFailure": {"Destination": "arn:aws:lambda:us-east-1:000000000000:function:dlq"}}
        }));
        assert_eq!(set.max_retries, 0);
        assert_eq!(set.max_age_s, 60);
        assert_eq!(
            set.on_failure.as_deref(),
            Some("arn:aws:lambda:us-east-1:000000000000:function:dlq")
        );
    }
}
