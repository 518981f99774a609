//! Function configuration: what CreateFunction and
//! UpdateFunctionConfiguration accept, how it is checked, and how a stored
//! version becomes Lambda's `FunctionConfiguration`.
//!
//! The store keeps only the settings a user chose (runtime, role, handler,
//! description, memory, timeout, environment); names, ARNs, code hashes,
//! revision ids and timestamps are added when answering, from the store's
//! own columns, so they can never disagree.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use base64::Engine;
use mayfly_proto::boot::validate_env;
use mayfly_proto::limits;
use mayfly_runner::linux::reserved_keys_in;
use mayfly_store::{BlobRef, FunctionVersion, Tags, LATEST};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::request::invalid_value;
use mayfly_host::names::function_arn;

/// Runtimes a Mayfly function may declare: the `provided` family, whose
/// `bootstrap` is the program.
pub const RUNTIMES: &[&str] = &["provided", "provided.al2", "provided.al2023"];
/// Lambda's defaults.
pub use mayfly_host::settings::DEFAULT_MEMORY_MB;
/// Lambda's default timeout, in seconds.
pub use mayfly_host::settings::DEFAULT_TIMEOUT_S;

/// `Environment` in requests.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Environment {
    /// The variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

/// `EphemeralStorage` in requests.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EphemeralStorage {
    /// The size of `/tmp`, in MB (512 to 10240).
    pub size: u32,
}

/// `Code` in CreateFunction.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FunctionCode {
    /// The zip, base64-encoded.
    pub zip_file: Option<String>,
    /// Unsupported here (no S3).
    pub s3_bucket: Option<String>,
    /// Unsupported here (no container images).
    pub image_uri: Option<String>,
}

/// CreateFunction's body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateFunction {
    /// The name.
    pub function_name: String,
    /// The runtime.
    pub runtime: Option<String>,
    /// The execution role (checked for shape only).
    pub role: Option<String>,
    /// The handler (informational for `provided` runtimes).
    pub handler: Option<String>,
    /// The package.
    #[serde(default)]
    pub code: FunctionCode,
    /// A description.
    pub description: Option<String>,
    /// Timeout in seconds.
    pub timeout: Option<u32>,
    /// Memory in MB.
    pub memory_size: Option<u32>,
    /// Publish version 1 at once.
    #[serde(default)]
    pub publish: bool,
    /// Environment variables.
    pub environment: Option<Environment>,
    /// `Zip` (the only one supported).
    pub package_type: Option<String>,
    /// The size of `/tmp`.
    pub ephemeral_storage: Option<EphemeralStorage>,
    /// The function's tags (checked by [`crate::tags::check_tags`]).
    pub tags: Option<Tags>,
}

/// UpdateFunctionConfiguration's body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateConfiguration {
    /// New runtime.
    pub runtime: Option<String>,
    /// New role.
    pub role: Option<String>,
    /// New handler.
    pub handler: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New timeout.
    pub timeout: Option<u32>,
    /// New memory size.
    pub memory_size: Option<u32>,
    /// New environment (replaces the old one whole).
    pub environment: Option<Environment>,
    /// Only if `$LATEST` still has this revision.
    pub revision_id: Option<String>,
    /// New size of `/tmp`.
    pub ephemeral_storage: Option<EphemeralStorage>,
}

/// UpdateFunctionCode's body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCode {
    /// The new zip, base64-encoded.
    pub zip_file: Option<String>,
    /// Unsupported here.
    pub s3_bucket: Option<String>,
    /// Unsupported here.
    pub image_uri: Option<String>,
    /// Publish a version after updating.
    #[serde(default)]
    pub publish: bool,
    /// Only if `$LATEST` still has this revision.
    pub revision_id: Option<String>,
}

/// A number within Lambda's range for `field`, or Lambda's message.
fn check_range(value: u32, field: &str, range: RangeInclusive<u32>) -> ApiResult<()> {
    let (min, max) = (*range.start(), *range.end());
    if value < min {
        return Err(invalid_value(
            value,
            field,
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(invalid_value(
            value,
            field,
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn check_memory(mb: u32) -> ApiResult<()> {
    check_range(mb, "memorySize", limits::MEMORY_MB)
}

fn check_timeout(s: u32) -> ApiResult<()> {
    check_range(s, "timeout", limits::TIMEOUT_S)
}

fn check_ephemeral(storage: &EphemeralStorage) -> ApiResult<u32> {
    check_range(storage.size, "ephemeralStorage.size", limits::EPHEMERAL_MB)?;
    Ok(storage.size)
}

fn check_runtime(runtime: &str) -> ApiResult<()> {
    if RUNTIMES.contains(&runtime) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(format!(
            "The runtime parameter of {runtime} is not supported by Mayfly. Use one of: {}",
            RUNTIMES.join(", ")
        )))
    }
}

fn check_role(role: &str) -> ApiResult<()> {
    // arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+
    let ok = (|| {
        let rest = role.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(':')?;
        if !(partition.is_empty() || partition.starts_with("aws")) {
            return None;
        }
        let rest = rest.strip_prefix("iam::")?;
        let (account, rest) = rest.split_once(':')?;
        let path = rest.strip_prefix("role")?;
        let path = path.strip_prefix('/').unwrap_or(path);
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let path_ok = !path.is_empty()
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b));
        (account_ok && path_ok).then_some(())
    })();
    ok.ok_or_else(|| {
        invalid_value(
            role,
            "role",
            "Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\\d{12}:role/?[a-zA-Z_0-9+=,.@\\-_/]+",
        )
    })
}

fn check_environment(env: &Environment) -> ApiResult<Vec<(String, String)>> {
    let vars: Vec<(String, String)> = env
        .variables
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    validate_env(&vars).map_err(|e| {
        ApiError::invalid_parameter(format!(
            "Lambda was unable to configure your environment variables: {e}"
        ))
    })?;
    let reserved = reserved_keys_in(vars.iter().map(|(k, _)| k.as_str()));
    if !reserved.is_empty() {
        return Err(ApiError::invalid_parameter(format!(
            "Lambda was unable to configure your environment variables because the environment              variables you have provided contains reserved keys that are currently not supported              for modification. Reserved keys used in this request: {}",
            reserved.join(", ")
        )));
    }
    Ok(vars)
}

fn check_description(description: &str) -> ApiResult<()> {
    if description.chars().count() > 256 {
        return Err(invalid_value(
            "...",
            "description",
            "Member must have length less than or equal to 256",
        ));
    }
    Ok(())
}

fn environment_json(vars: Vec<(String, String)>) -> Value {
    let vars: Map<String, Value> = vars
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    json!({ "Variables": vars })
}

/// Decodes `Code.ZipFile`/`ZipFile`.
pub fn decode_zip(zip_file: Option<&str>, s3: bool, image: bool) -> ApiResult<Vec<u8>> {
    if s3 || image {
        return Err(ApiError::invalid_parameter(
            "Mayfly takes packages as Code.ZipFile only (no S3 locations or container images)",
        ));
    }
    let encoded = zip_file.ok_or_else(|| {
        ApiError::invalid_parameter("Please provide a source for function code (ZipFile).")
    })?;
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| ApiError::invalid_parameter(format!("ZipFile is not valid base64: {e}")))
}

/// Checks a CreateFunction request and returns the settings to store.
pub fn settings_for_create(req: &CreateFunction) -> ApiResult<Value> {
    let runtime = req.runtime.as_deref().ok_or_else(|| {
        ApiError::invalid_parameter("Runtime is required for .zip file based functions")
    })?;
    check_runtime(runtime)?;
    let role = req
        .role
        .as_deref()
        .ok_or_else(|| invalid_value("null", "role", "Member must not be null"))?;
    check_role(role)?;
    if let Some(kind) = req.package_type.as_deref().filter(|k| *k != "Zip") {
        return Err(ApiError::invalid_parameter(format!(
            "PackageType {kind} is not supported; use Zip"
        )));
    }
    let memory = req.memory_size.unwrap_or(DEFAULT_MEMORY_MB);
    check_memory(memory)?;
    let timeout = req.timeout.unwrap_or(DEFAULT_TIMEOUT_S);
    check_timeout(timeout)?;
    let description = req.description.clone().unwrap_or_default();
    check_description(&description)?;
    let mut settings = json!({
        "Runtime": runtime,
        "Role": role,
        "Handler": req.handler.clone().unwrap_or_else(|| "bootstrap".into()),
        "Description": description,
        "MemorySize": memory,
        "Timeout": timeout,
    });
    if let Some(env) = &req.environment {
        let vars = check_environment(env)?;
        settings["Environment"] = environment_json(vars);
    }
    if let Some(storage) = &req.ephemeral_storage {
        settings["EphemeralStorage"] = json!({ "Size": check_ephemeral(storage)? });
    }
    Ok(settings)
}

/// Checks an UpdateFunctionConfiguration request and applies it to the
/// stored settings.
pub fn apply_update(settings: &Value, req: &UpdateConfiguration) -> ApiResult<Value> {
    let mut next = settings.clone();
    if let Some(runtime) = &req.runtime {
        check_runtime(runtime)?;
        next["Runtime"] = json!(runtime);
    }
    if let Some(role) = &req.role {
        check_role(role)?;
        next["Role"] = json!(role);
    }
    if let Some(handler) = &req.handler {
        next["Handler"] = json!(handler);
    }
    if let Some(description) = &req.description {
        check_description(description)?;
        next["Description"] = json!(description);
    }
    if let Some(memory) = req.memory_size {
        check_memory(memory)?;
        next["MemorySize"] = json!(memory);
    }
    if let Some(timeout) = req.timeout {
        check_timeout(timeout)?;
        next["Timeout"] = json!(timeout);
    }
    if let Some(storage) = &req.ephemeral_storage {
        next["EphemeralStorage"] = json!({ "Size": check_ephemeral(storage)? });
    }
    if let Some(env) = &req.environment {
        let vars = check_environment(env)?;
        if let Value::Object(map) = &mut next {
            if vars.is_empty() {
                map.remove("Environment");
            } else {
                map.insert("Environment".into(), environment_json(vars));
            }
        }
    }
    Ok(next)
}

/// Lambda's `FunctionConfiguration` for a stored version.
pub fn configuration(version: &FunctionVersion, region: &str) -> Value {
    let mut config = match &version.config {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    let qualifier = (version.version != LATEST).then_some(version.version.as_str());
    let sha = BlobRef::hex_to_base64(&version.code_sha256).unwrap_or_default();
    let extra = json!({
        "FunctionName": version.name,
        "FunctionArn": function_arn(region, &version.name, qualifier),
        "CodeSize": version.code_size,
        "CodeSha256": sha,
        "Version": version.version,
        "LastModified": version.last_modified,
        "RevisionId": version.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": ["x86_64"],
        "TracingConfig": { "Mode": "PassThrough" },
    });
    if let Value::Object(extra) = extra {
        config.extend(extra);
    }
    // What the function chose (stored since EphemeralStorage is honoured),
    // else Lambda's default.
    config
        .entry("EphemeralStorage")
        .or_insert_with(|| json!({ "Size": limits::DEFAULT_EPHEMERAL_MB }));
    Value::Object(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(body: Value) -> CreateFunction {
        serde_json::from_value(body).unwrap()
    }

    fn test_version() -> FunctionVersion {
        FunctionVersion {
            name: "f".into(),
            version: LATEST.into(),
            config: json!({}),
            code_sha256: "00".repeat(32),
            code_size: 1,
            revision_id: "r".into(),
            created: "c".into(),
            last_modified: "m".into(),
        }
    }

    #[test]
    fn create_defaults_and_checks() {
        let ok = create(json!({
            "FunctionName": "f", "Runtime": "provided.al2023",
            "Role": "arn:aws:iam::123456789012:role/lambda-role", "Code": {"ZipFile": ""}
        }));
        let settings = settings_for_create(&ok).unwrap();
        assert_eq!(settings["MemorySize"], 128);
        assert_eq!(settings["Timeout"], 3);
        assert!(settings.get("Environment").is_none());

        let bad = |patch: Value| {
            let mut body = json!({
                "FunctionName": "f", "Runtime": "provided.al2023",
                "Role": "arn:aws:iam::123456789012:role/r", "Code": {"ZipFile": ""}
            });
            for (k, v) in patch.as_object().unwrap() {
                body[k] = v.clone();
            }
            settings_for_create(&create(body)).unwrap_err()
        };
        assert_eq!(bad(json!({"MemorySize": 64})).code, "ValidationException");
        assert_eq!(
            bad(json!({"MemorySize": 10241})).code,
            "ValidationException"
        );
        assert_eq!(bad(json!({"Timeout": 901})).code, "ValidationException");
        assert_eq!(
            bad(json!({"Runtime": "python3.12"})).code,
            "InvalidParameterValueException"
        );
        assert_eq!(
            bad(json!({"Role": "not-a-role"})).code,
            "ValidationException"
        );
        assert_eq!(
            bad(json!({"Environment": {"Variables": {"1X": "y"}}})).code,
            "InvalidParameterValueException"
        );
        assert_eq!(
            bad(json!({"Environment": {"Variables": {"BIG": "x".repeat(4094)}}})).code,
            "InvalidParameterValueException"
        );
    }

    #[test]
    fn ephemeral_storage_is_checked_kept_and_returned() {
        let body = |extra: Value| {
            let mut body = json!({
                "FunctionName": "f", "Runtime": "provided.al2023",
                "Role": "arn:aws:iam::123456789012:role/r", "Code": {"ZipFile": ""}
            });
            for (k, v) in extra.as_object().unwrap() {
                body[k] = v.clone();
            }
            create(body)
        };
        let settings = settings_for_create(&body(json!({}))).unwrap();
        assert!(settings.get("EphemeralStorage").is_none());
        let settings =
            settings_for_create(&body(json!({"EphemeralStorage": {"Size": 10240}}))).unwrap();
        assert_eq!(settings["EphemeralStorage"], json!({"Size": 10240}));
        for bad in [511, 10241, 0] {
            let err =
                settings_for_create(&body(json!({"EphemeralStorage": {"Size": bad}}))).unwrap_err();
            assert_eq!(err.code, "ValidationException", "{bad}");
            assert!(
                err.message.contains("ephemeralStorage.size"),
                "{}",
                err.message
            );
        }
        let next = apply_update(
            &settings,
            &UpdateConfiguration {
                ephemeral_storage: Some(EphemeralStorage { size: 1024 }),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(next["EphemeralStorage"]["Size"], 1024);
        assert!(apply_update(
            &settings,
            &UpdateConfiguration {
                ephemeral_storage: Some(EphemeralStorage { size: 100 }),
                ..Default::default()
            },
        )
        .is_err());
        // The configuration shows it, or Lambda's default.
        let version = |config: Value| FunctionVersion {
            config,
            ..test_version()
        };
        assert_eq!(
            configuration(&version(next), "us-east-1")["EphemeralStorage"],
            json!({"Size": 1024})
        );
        assert_eq!(
            configuration(&version(json!({})), "us-east-1")["EphemeralStorage"],
            json!({"Size": 512})
        );
    }

    #[test]
    fn reserved_environment_keys_are_refused_as_lambda_refuses_them() {
        let env = |vars: &[(&str, &str)]| Environment {
            variables: vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let err = check_environment(&env(&[("AWS_REGION", "x"), ("OK", "y")])).unwrap_err();
        assert_eq!(err.code, "InvalidParameterValueException");
        assert!(
            err.message
                .ends_with("Reserved keys used in this request: AWS_REGION"),
            "{}",
            err.message
        );
        assert!(check_environment(&env(&[("_HANDLER", "x")])).is_err());
        assert!(check_environment(&env(&[("LAMBDA_TASK_ROOT", "x")])).is_err());
        // Lambda lets a function change these.
        assert!(check_environment(&env(&[("PATH", "/x"), ("LANG", "C"), ("TZ", "UTC")])).is_ok());
    }

    #[test]
    fn updates_replace_what_they_name() {
        let settings =
            json!({"MemorySize": 128, "Timeout": 3, "Environment": {"Variables": {"A1": "x"}}});
        let req = UpdateConfiguration {
            memory_size: Some(256),
            environment: Some(Environment {
                variables: [("B2".to_string(), "y".to_string())].into(),
            }),
            ..Default::default()
        };
        let next = apply_update(&settings, &req).unwrap();
        assert_eq!(next["MemorySize"], 256);
        assert_eq!(next["Timeout"], 3);
        assert_eq!(next["Environment"]["Variables"], json!({"B2": "y"}));
        let cleared = apply_update(
            &next,
            &UpdateConfiguration {
                environment: Some(Environment::default()),
                ..Default::default()
            },
        )
        .unwrap();
        assert!(cleared.get("Environment").is_none());
    }

    #[test]
    fn roles() {
        assert!(check_role("arn:aws:iam::000000000000:role/service-role/x+y=z").is_ok());
        assert!(check_role("arn:aws:iam::00000000000:role/x").is_err());
        assert!(check_role("arn:aws:iam::000000000000:user/x").is_err());
    }
}
