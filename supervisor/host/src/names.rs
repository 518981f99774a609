//! Function names, ARNs and qualifiers, as Lambda accepts them.
//!
//! A `FunctionName` parameter may be a plain name (`echo`), a name with a
//! qualifier (`echo:prod`), a partial ARN (`000000000000:function:echo`) or
//! a full ARN (`arn:aws:lambda:us-east-1:000000000000:function:echo:1`). ARNs of
//! other accounts name nothing here.

use thiserror::Error;

/// Why a name, ARN or qualifier is refused; the API answers each kind with
/// Lambda's exception.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// It does not have the required shape (`ValidationException`).
    #[error("{0}")]
    Invalid(String),
    /// It names nothing on this host (`ResourceNotFoundException`).
    #[error("{0}")]
    NotFound(String),
    /// It contradicts another parameter (`InvalidParameterValueException`).
    #[error("{0}")]
    Conflicting(String),
}

type NameResult<T> = Result<T, NameError>;

/// Lambda's message for one field that fails a constraint.
pub fn validation_message(value: impl std::fmt::Display, field: &str, constraint: &str) -> String {
    format!(
        "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
    )
}

/// The account id in every ARN this host writes.
pub const ACCOUNT_ID: &str = "000000000000";
/// The region used when a request does not name one.
pub const DEFAULT_REGION: &str = "us-east-1";

/// A function reference, resolved from the path and the `Qualifier`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    /// The function's name.
    pub name: String,
    /// `$LATEST`, a version number or an alias, if one was given.
    pub qualifier: Option<String>,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_qualifier(q: &str) -> bool {
    (1..=128).contains(&q.len())
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'$'))
}

/// Checks a plain function name (CreateFunction's `FunctionName`).
pub fn check_name(name: &str) -> NameResult<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(NameError::Invalid(validation_message(
            name,
            "functionName",
            "Member must satisfy regular expression pattern: [a-zA-Z0-9-_]+ and have length 1 to 64",
        )))
    }
}

/// Parses a `FunctionName` parameter and an optional `Qualifier`.
///
/// ```
/// use mayfly_host::names::{parse_function, FunctionRef};
/// let f = parse_function("arn:aws:lambda:us-east-1:000000000000:function:echo:prod", None).unwrap();
/// assert_eq!(f, FunctionRef { name: "echo".into(), qualifier: Some("prod".into()) });
/// ```
pub fn parse_function(param: &str, qualifier: Option<&str>) -> NameResult<FunctionRef> {
    let invalid = || {
        NameError::Invalid(validation_message(
            param,
            "functionName",
            "Member must satisfy regular expression pattern: \
             (arn:(aws[a-zA-Z-]*)?:lambda:)?([a-z]{2}(-gov)?-[a-z]+-\\d{1}:)?(\\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\\$LATEST|[a-zA-Z0-9-_]+))?",
        ))
    };
    let parts: Vec<&str> = param.split(':').collect();
    let (name, derived) = match parts.as_slice() {
        [name] => (*name, None),
        [name, q] => (*name, Some(*q)),
        [account, "function", name] if account.len() == 12 => (*name, None),
        [account, "function", name, q] if account.len() == 12 => (*name, Some(*q)),
        ["arn", partition, "lambda", _region, account, "function", rest @ ..]
            if partition.starts_with("aws") && account.len() == 12 =>
        {
            match rest {
                [name] => (*name, None),
                [name, q] => (*name, Some(*q)),
                _ => return Err(invalid()),
            }
        }
        _ => return Err(invalid()),
    };
    if !valid_name(name) || derived.is_some_and(|q| !valid_qualifier(q)) {
        return Err(invalid());
    }
    // An ARN of another account names a function this host does not have.
    let account = match parts.as_slice() {
        [account, "function", ..] => Some(*account),
        ["arn", _, "lambda", _, account, "function", ..] => Some(*account),
        _ => None,
    };
    if account.is_some_and(|a| a != ACCOUNT_ID) {
        return Err(NameError::NotFound(format!("Function not found: {param}")));
    }
    let qualifier = match (derived, qualifier.filter(|q| !q.is_empty())) {
        (Some(a), Some(b)) if a != b => return Err(NameError::Conflicting(
            "The derived qualifier from the function name does not match the specified qualifier."
                .into(),
        )),
        (Some(q), _) | (None, Some(q)) => {
            if !valid_qualifier(q) {
                return Err(NameError::Invalid(validation_message(
                    q,
                    "qualifier",
                    "Member must satisfy regular expression pattern: (|[a-zA-Z0-9$_-]+)",
                )));
            }
            Some(q.to_string())
        }
        (None, None) => None,
    };
    Ok(FunctionRef {
        name: name.to_string(),
        qualifier,
    })
}

/// `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
pub fn function_arn(region: &str, name: &str, qualifier: Option<&str>) -> String {
    match qualifier {
        Some(q) => format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}:{q}"),
        None => format!("arn:aws:lambda:{region}:{ACCOUNT_ID}:function:{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, q: Option<&str>) -> FunctionRef {
        FunctionRef {
            name: name.into(),
            qualifier: q.map(Into::into),
        }
    }

    #[test]
    fn forms_of_a_function_name() {
        assert_eq!(parse_function("echo", None).unwrap(), f("echo", None));
        assert_eq!(
            parse_function("echo", Some("$LATEST")).unwrap(),
            f("echo", Some("$LATEST"))
        );
        assert_eq!(
            parse_function("echo:3", None).unwrap(),
            f("echo", Some("3"))
        );
        assert_eq!(
            parse_function("echo:3", Some("3")).unwrap(),
            f("echo", Some("3"))
        );
        assert_eq!(
            parse_function("000000000000:function:my_fn-2", None).unwrap(),
            f("my_fn-2", None)
        );
        assert_eq!(
            parse_function(
                "arn:aws:lambda:eu-west-1:000000000000:function:echo:$LATEST",
                None
            )
            .unwrap(),
            f("echo", Some("$LATEST"))
        );
        assert_eq!(parse_function("echo", Some("")).unwrap(), f("echo", None));
    }

    #[test]
    fn other_accounts_have_no_functions_here() {
        let err = parse_function("arn:aws:lambda:us-east-1:123456789012:function:echo", None)
            .unwrap_err();
        assert!(matches!(err, NameError::NotFound(_)));
        let err = parse_function("123456789012:function:echo", None).unwrap_err();
        assert!(matches!(err, NameError::NotFound(_)));
    }

    #[test]
    fn bad_names_and_qualifiers() {
        for bad in [
            "",
            "a b",
            "x".repeat(65).as_str(),
            "arn:aws:s3:::bucket",
            "a:b:c",
            "echo:",
        ] {
            let err = parse_function(bad, None).unwrap_err();
            assert!(matches!(err, NameError::Invalid(_)), "{bad}");
        }
        assert!(matches!(
            parse_function("echo:1", Some("2")),
            Err(NameError::Conflicting(_))
        ));
        assert!(matches!(
            parse_function("echo", Some("a/b")),
            Err(NameError::Invalid(_))
        ));
        assert!(check_name("ok-name_1").is_ok());
        assert!(check_name("echo:1").is_err());
    }

    #[test]
    fn arns() {
        assert_eq!(
            function_arn("us-east-1", "echo", None),
            "arn:aws:lambda:us-east-1:000000000000:function:echo"
        );
        assert_eq!(
            function_arn("eu-west-1", "echo", Some("prod")),
            "arn:aws:lambda:eu-west-1:000000000000:function:echo:prod"
        );
    }
}
