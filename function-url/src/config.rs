//! A function URL's configuration as Lambda's API has it (`AuthType`,
//! `Cors`, `InvokeMode`), with Lambda's checks.

use serde::{Deserialize, Serialize};

/// Who may call a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthType {
    /// Anyone the function's resource policy lets in (a statement for
    /// principal `*` with `lambda:FunctionUrlAuthType` `NONE`).
    #[serde(rename = "NONE")]
    None,
    /// Requests signed with SigV4 (service `lambda`) by a known key.
    #[serde(rename = "AWS_IAM")]
    AwsIam,
}

impl AuthType {
    /// Lambda's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::None => "NONE",
            AuthType::AwsIam => "AWS_IAM",
        }
    }

    /// Parses Lambda's name.
    pub fn parse(text: &str) -> Option<AuthType> {
        match text {
            "NONE" => Some(AuthType::None),
            "AWS_IAM" => Some(AuthType::AwsIam),
            _ => None,
        }
    }
}

/// How the function's answer reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum InvokeMode {
    /// Whole, once the function has answered.
    #[default]
    #[serde(rename = "BUFFERED")]
    Buffered,
    /// As the function writes it.
    #[serde(rename = "RESPONSE_STREAM")]
    ResponseStream,
}

impl InvokeMode {
    /// Parses Lambda's name.
    pub fn parse(text: &str) -> Option<InvokeMode> {
        match text {
            "BUFFERED" => Some(InvokeMode::Buffered),
            "RESPONSE_STREAM" => Some(InvokeMode::ResponseStream),
            _ => None,
        }
    }
}

/// Cross-origin resource sharing for a URL, as Lambda's `Cors`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct Cors {
    /// `Access-Control-Allow-Credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// Headers a request may carry (`*`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_headers: Option<Vec<String>>,
    /// Methods allowed (`*`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_methods: Option<Vec<String>>,
    /// Origins allowed (`*`: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_origins: Option<Vec<String>>,
    /// Response headers a browser may show the page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose_headers: Option<Vec<String>>,
    /// Seconds a browser may cache a preflight answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<i64>,
}

/// Why a `Cors` is not one Lambda takes: the field and the constraint, in
/// the words of Lambda's `ValidationException`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Value at '{field}' failed to satisfy constraint: {constraint}")]
pub struct CorsError {
    /// The field, as Lambda names it (`cors.maxAge`).
    pub field: &'static str,
    /// What it must be.
    pub constraint: String,
}

/// Lambda's limits on `Cors`.
const MAX_ITEMS: usize = 100;
const MAX_METHODS: usize = 6;
const MAX_METHOD_CHARS: usize = 6;
const MAX_ORIGIN_CHARS: usize = 253;
const MAX_HEADER_CHARS: usize = 1024;
const MAX_AGE_SECONDS: i64 = 86_400;

impl Cors {
    /// Checks the lists' sizes and items and `MaxAge`, as Lambda does.
    pub fn check(&self) -> Result<(), CorsError> {
        fn items(
            list: &Option<Vec<String>>,
            field: &'static str,
            max_items: usize,
            max_chars: usize,
        ) -> Result<(), CorsError> {
            let Some(list) = list else { return Ok(()) };
            if list.len() > max_items {
                return Err(CorsError {
                    field,
                    constraint: format!(
                        "Member must have length less than or equal to {max_items}"
                    ),
                });
            }
            for item in list {
                if item.is_empty() || item.chars().count() > max_chars {
                    return Err(CorsError {
                        field,
                        constraint: format!(
                            "Member must satisfy constraint: [Member must have length less than or equal to {max_chars}, Member must have length greater than or equal to 1]"
                        ),
                    });
                }
            }
            Ok(())
        }
        items(
            &self.allow_headers,
            "cors.allowHeaders",
            MAX_ITEMS,
            MAX_HEADER_CHARS,
        )?;
        items(
            &self.expose_headers,
            "cors.exposeHeaders",
            MAX_ITEMS,
            MAX_HEADER_CHARS,
        )?;
        items(
            &self.allow_origins,
            "cors.allowOrigins",
            MAX_ITEMS,
            MAX_ORIGIN_CHARS,
        )?;
        items(
            &self.allow_methods,
            "cors.allowMethods",
            MAX_METHODS,
            MAX_METHOD_CHARS,
        )?;
        if let Some(methods) = &self.allow_methods {
            const METHODS: &[&str] = &["*", "GET", "PUT", "HEAD", "POST", "PATCH", "DELETE"];
            if let Some(bad) = methods
                .iter()
                .find(|m| !METHODS.contains(&m.to_ascii_uppercase().as_str()))
            {
                return Err(CorsError {
                    field: "cors.allowMethods",
                    constraint: format!(
                        "Member must satisfy enum value set: [*, GET, PUT, HEAD, POST, PATCH, DELETE] (got {bad})"
                    ),
                });
            }
        }
        if let Some(age) = self.max_age {
            if !(0..=MAX_AGE_SECONDS).contains(&age) {
                return Err(CorsError {
                    field: "cors.maxAge",
                    constraint: format!(
                        "Member must have value less than or equal to {MAX_AGE_SECONDS}, Member must have value greater than or equal to 0"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A URL's configuration, as it is stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UrlConfig {
    /// Who may call.
    pub auth_type: AuthType,
    /// CORS, if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<Cors>,
    /// Buffered or streamed.
    #[serde(default)]
    pub invoke_mode: InvokeMode,
}

/// The characters of a URL id, and its length: Lambda's are 32 lower-case
/// letters and digits.
pub const URL_ID_CHARS: usize = 32;

/// Whether `id` has a URL id's shape.
pub fn is_url_id(id: &str) -> bool {
    id.len() == URL_ID_CHARS
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_read_and_write_lambdas_json() {
        let config: UrlConfig = serde_json::from_str(
            r#"{"AuthType":"NONE","Cors":{"AllowOrigins":["*"],"MaxAge":60},"InvokeMode":"RESPONSE_STREAM"}"#,
        )
        .unwrap();
        assert_eq!(config.auth_type, AuthType::None);
        assert_eq!(config.invoke_mode, InvokeMode::ResponseStream);
        assert_eq!(config.cors.as_ref().unwrap().max_age, Some(60));
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            json,
            r#"{"AuthType":"NONE","Cors":{"AllowOrigins":["*"],"MaxAge":60},"InvokeMode":"RESPONSE_STREAM"}"#
        );
        let plain: UrlConfig = serde_json::from_str(r#"{"AuthType":"AWS_IAM"}"#).unwrap();
        assert_eq!(plain.invoke_mode, InvokeMode::Buffered);
        assert!(serde_json::from_str::<Cors>(r#"{"AllowOrigin":["*"]}"#).is_err());
    }

    #[test]
    fn cors_is_checked_as_lambda_checks_it() {
        let ok = Cors {
            allow_methods: Some(vec!["get".into(), "POST".into()]),
            max_age: Some(86_400),
            ..Cors::default()
        };
        assert_eq!(ok.check(), Ok(()));
        let age = Cors {
            max_age: Some(86_401),
            ..Cors::default()
        };
        assert_eq!(age.check().unwrap_err().field, "cors.maxAge");
        let method = Cors {
            allow_methods: Some(vec!["TRACE".into()]),
            ..Cors::default()
        };
        assert_eq!(method.check().unwrap_err().field, "cors.allowMethods");
        let origins = Cors {
            allow_origins: Some(vec!["x".repeat(254)]),
            ..Cors::default()
        };
        assert_eq!(origins.check().unwrap_err().field, "cors.allowOrigins");
    }

    #[test]
    fn url_ids() {
        assert!(is_url_id("abcdefghijklmnopqrstuvwxyz012345"));
        assert!(!is_url_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"));
        assert!(!is_url_id("short"));
    }
}
