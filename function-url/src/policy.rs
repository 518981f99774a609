//! A function's resource policy: the statements AddPermission makes, as
//! GetPolicy shows them, and the questions the host asks of them: may
//! anyone call a `NONE` URL ([`allows_public_url`])? may a service invoke
//! the function on behalf of a resource ([`allows_service`])?

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::config::AuthType;

/// AddPermission's body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AddPermission {
    /// The statement's id, unique in the policy.
    pub statement_id: String,
    /// `lambda:InvokeFunction`, `lambda:InvokeFunctionUrl`, `lambda:*`…
    pub action: String,
    /// `*`, an account id, an ARN or a service (`s3.amazonaws.com`).
    pub principal: String,
    /// Only calls on behalf of this resource.
    #[serde(default)]
    pub source_arn: Option<String>,
    /// Only calls on behalf of this account.
    #[serde(default)]
    pub source_account: Option<String>,
    /// For Alexa.
    #[serde(default)]
    pub event_source_token: Option<String>,
    /// Only if the policy's revision is still this one.
    #[serde(default)]
    pub revision_id: Option<String>,
    /// Only principals of this organisation.
    #[serde(default, rename = "PrincipalOrgID")]
    pub principal_org_id: Option<String>,
    /// For `lambda:InvokeFunctionUrl`: the URL auth type it covers.
    #[serde(default)]
    pub function_url_auth_type: Option<String>,
}

/// Why AddPermission's input is refused: the field (as Lambda's message
/// names it), the value and the constraint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Value '{value}' at '{field}' failed to satisfy constraint: {constraint}")]
pub struct PermissionError {
    /// The field.
    pub field: &'static str,
    /// Its value.
    pub value: String,
    /// What it must be.
    pub constraint: String,
}

fn check(
    ok: bool,
    field: &'static str,
    value: &str,
    constraint: &str,
) -> Result<(), PermissionError> {
    if ok {
        Ok(())
    } else {
        Err(PermissionError {
            field,
            value: value.to_string(),
            constraint: constraint.to_string(),
        })
    }
}

/// Lambda's `Principal` in a statement: `*`, a service, or an account as
/// its root ARN.
fn principal(text: &str) -> Value {
    if text == "*" {
        return json!("*");
    }
    if text.len() == 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        return json!({ "AWS": format!("arn:aws:iam::{text}:root") });
    }
    if text.starts_with("arn:") {
        return json!({ "AWS": text });
    }
    json!({ "Service": text })
}

/// The statement AddPermission adds for `input` on `resource` (the
/// function's ARN, qualified if the permission is).
pub fn statement(input: &AddPermission, resource: &str) -> Result<Value, PermissionError> {
    let sid = &input.statement_id;
    check(
        (1..=100).contains(&sid.len())
            && sid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "statementId",
        sid,
        "Member must satisfy regular expression pattern: ([a-zA-Z0-9-_.]+)",
    )?;
    let action = &input.action;
    let action_ok = action == "*"
        || action.strip_prefix("lambda:").is_some_and(|a| {
            a == "*" || (!a.is_empty() && a.bytes().all(|b| b.is_ascii_alphabetic()))
        });
    check(
        action_ok,
        "action",
        action,
        "Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])",
    )?;
    check(
        !input.principal.is_empty() && !input.principal.contains(char::is_whitespace),
        "principal",
        &input.principal,
        "Member must satisfy regular expression pattern: [^\\s]+",
    )?;
    if let Some(account) = &input.source_account {
        check(
            account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()),
            "sourceAccount",
            account,
            "Member must satisfy regular expression pattern: \\d{12}",
        )?;
    }
    let auth = match &input.function_url_auth_type {
        None => None,
        Some(text) => {
            let auth = AuthType::parse(text);
            check(
                auth.is_some(),
                "functionUrlAuthType",
                text,
                "Member must satisfy enum value set: [NONE, AWS_IAM]",
            )?;
            auth
        }
    };
    let mut string_equals = Map::new();
    if let Some(auth) = auth {
        string_equals.insert("lambda:FunctionUrlAuthType".into(), json!(auth.as_str()));
    }
    if let Some(account) = &input.source_account {
        string_equals.insert("AWS:SourceAccount".into(), json!(account));
    }
    if let Some(org) = &input.principal_org_id {
        string_equals.insert("aws:PrincipalOrgID".into(), json!(org));
    }
    if let Some(token) = &input.event_source_token {
        string_equals.insert("lambda:EventSourceToken".into(), json!(token));
    }
    let mut condition = Map::new();
    if !string_equals.is_empty() {
        condition.insert("StringEquals".into(), Value::Object(string_equals));
    }
    if let Some(arn) = &input.source_arn {
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": arn }));
    }
    let mut statement = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal(&input.principal),
        "Action": action,
        "Resource": resource,
    });
    if !condition.is_empty() {
        statement["Condition"] = Value::Object(condition);
    }
    Ok(statement)
}

/// The policy document GetPolicy shows for `statements`.
pub fn document(statements: &[Value]) -> String {
    json!({
        "Version": "2012-10-17",
        "Id": "default",
        "Statement": statements,
    })
    .to_string()
}

/// Whether `statements` let anyone call a URL whose auth type is `NONE`:
/// one allows `lambda:InvokeFunctionUrl` (or `lambda:*`, `*`) to
/// principal `*` under the condition `lambda:FunctionUrlAuthType` `NONE`,
/// and has no other condition a caller of a URL cannot meet.
pub fn allows_public_url(statements: &[Value]) -> bool {
    statements.iter().any(|s| {
        let action = s["Action"].as_str().unwrap_or("");
        let everyone = s["Principal"] == "*" || s["Principal"]["AWS"] == "*";
        let Some(condition) = s["Condition"].as_object() else {
            return false;
        };
        let equals = condition.get("StringEquals").and_then(Value::as_object);
        let only_auth = condition.len() == 1 && equals.is_some_and(|e| e.len() == 1);
        s["Effect"] == "Allow"
            && everyone
            && matches!(action, "lambda:InvokeFunctionUrl" | "lambda:*" | "*")
            && only_auth
            && equals.is_some_and(|e| e["lambda:FunctionUrlAuthType"] == "NONE")
    })
}

/// Whether `statements` let `service` (`s3.amazonaws.com`) invoke the
/// function on behalf of `source_arn` in `account`: one allows
/// `lambda:InvokeFunction` (or `lambda:*`, `*`) to that service (or to
/// `*`), and each of its conditions is one the call meets: `ArnLike` or
/// `ArnEquals` on `AWS:SourceArn` (with `*` and `?` as wildcards for
/// `ArnLike`), `StringEquals` on `AWS:SourceAccount`. A condition on
/// anything else is one the host cannot check, so the statement does not
/// count.
pub fn allows_service(
    statements: &[Value],
    service: &str,
    source_arn: &str,
    account: &str,
) -> bool {
    statements.iter().any(|s| {
        let action = s["Action"].as_str().unwrap_or("");
        let principal = s["Principal"] == "*" || s["Principal"]["Service"] == service;
        s["Effect"] == "Allow"
            && principal
            && matches!(action, "lambda:InvokeFunction" | "lambda:*" | "*")
            && conditions_met(&s["Condition"], source_arn, account)
    })
}

fn conditions_met(condition: &Value, source_arn: &str, account: &str) -> bool {
    let Some(condition) = condition.as_object() else {
        return condition.is_null();
    };
    condition.iter().all(|(operator, keys)| {
        let Some(keys) = keys.as_object() else {
            return false;
        };
        keys.iter().all(|(key, wanted)| {
            let Some(wanted) = wanted.as_str() else {
                return false;
            };
            match (operator.as_str(), key.as_str()) {
                ("ArnLike", "AWS:SourceArn") => glob(wanted.as_bytes(), source_arn.as_bytes()),
                ("ArnEquals", "AWS:SourceArn") => wanted == source_arn,
                ("StringEquals", "AWS:SourceAccount") => wanted == account,
                _ => false,
            }
        })
    })
}

/// IAM's wildcard match: `*` any run of characters, `?` any one.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative with one backtrack point: linear enough for ARNs, and no
    // recursion for a hostile pattern to deepen.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:f";

    fn input(json: &str) -> AddPermission {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_tutorials_statement_is_lambdas() {
        let s = statement(
            &input(
                r#"{"StatementId":"FunctionURLAllowPublicAccess","Action":"lambda:InvokeFunctionUrl",
                    "Principal":"*","FunctionUrlAuthType":"NONE"}"#,
            ),
            ARN,
        )
        .unwrap();
        assert_eq!(
            s,
            json!({
                "Sid": "FunctionURLAllowPublicAccess",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "lambda:InvokeFunctionUrl",
                "Resource": ARN,
                "Condition": {"StringEquals": {"lambda:FunctionUrlAuthType": "NONE"}}
            })
        );
        assert!(allows_public_url(std::slice::from_ref(&s)));
        let doc: Value = serde_json::from_str(&document(&[s])).unwrap();
        assert_eq!(doc["Version"], "2012-10-17");
        assert_eq!(doc["Statement"][0]["Sid"], "FunctionURLAllowPublicAccess");
    }

    #[test]
    fn principals_and_conditions_take_lambdas_shapes() {
        let s = statement(
            &input(
                r#"{"StatementId":"s3","Action":"lambda:InvokeFunction","Principal":"s3.amazonaws.com",
                    "SourceArn":"arn:aws:s3:::bucket","SourceAccount":"111122223333"}"#,
            ),
            ARN,
        )
        .unwrap();
        assert_eq!(s["Principal"], json!({"Service": "s3.amazonaws.com"}));
        assert_eq!(
            s["Condition"]["ArnLike"]["AWS:SourceArn"],
            "arn:aws:s3:::bucket"
        );
        assert_eq!(
            s["Condition"]["StringEquals"]["AWS:SourceAccount"],
            "111122223333"
        );
        let account = statement(
            &input(r#"{"StatementId":"a","Action":"lambda:*","Principal":"111122223333"}"#),
            ARN,
        )
        .unwrap();
        assert_eq!(
            account["Principal"],
            json!({"AWS": "arn:aws:iam::111122223333:root"})
        );
        assert!(account.get("Condition").is_none());
    }

    #[test]
    fn a_public_url_needs_the_auth_condition_and_principal_star() {
        let make = |json: &str| statement(&input(json), ARN).unwrap();
        let without_condition =
            make(r#"{"StatementId":"a","Action":"lambda:InvokeFunctionUrl","Principal":"*"}"#);
        let for_iam = make(
            r#"{"StatementId":"b","Action":"lambda:InvokeFunctionUrl","Principal":"*","FunctionUrlAuthType":"AWS_IAM"}"#,
        );
        let for_an_account = make(
            r#"{"StatementId":"c","Action":"lambda:InvokeFunctionUrl","Principal":"111122223333","FunctionUrlAuthType":"NONE"}"#,
        );
        let other_action = make(
            r#"{"StatementId":"d","Action":"lambda:InvokeFunction","Principal":"*","FunctionUrlAuthType":"NONE"}"#,
        );
        let with_source = make(
            r#"{"StatementId":"e","Action":"lambda:InvokeFunctionUrl","Principal":"*","FunctionUrlAuthType":"NONE","SourceAccount":"111122223333"}"#,
        );
        for s in [
            without_condition,
            for_iam,
            for_an_account,
            other_action,
            with_source,
        ] {
            assert!(!allows_public_url(std::slice::from_ref(&s)), "{s}");
        }
        assert!(!allows_public_url(&[]));
    }

    #[test]
    fn bad_inputs_name_their_field() {
        for (json, field) in [
            (
                r#"{"StatementId":"a b","Action":"lambda:InvokeFunction","Principal":"*"}"#,
                "statementId",
            ),
            (
                r#"{"StatementId":"a","Action":"lambda:Invoke1","Principal":"*"}"#,
                "action",
            ),
            (
                r#"{"StatementId":"a","Action":"s3:GetObject","Principal":"*"}"#,
                "action",
            ),
            (
                r#"{"StatementId":"a","Action":"*","Principal":"a b"}"#,
                "principal",
            ),
            (
                r#"{"StatementId":"a","Action":"*","Principal":"*","SourceAccount":"12"}"#,
                "sourceAccount",
            ),
            (
                r#"{"StatementId":"a","Action":"*","Principal":"*","FunctionUrlAuthType":"OPEN"}"#,
                "functionUrlAuthType",
            ),
        ] {
            assert_eq!(
                statement(&input(json), ARN).unwrap_err().field,
                field,
                "{json}"
            );
        }
    }

    #[test]
    fn a_service_is_let_in_only_for_the_sources_its_statement_names() {
        let add = |json: &str| statement(&input(json), ARN).unwrap();
        let s3 = add(
            r#"{"StatementId":"s3","Action":"lambda:InvokeFunction","Principal":"s3.amazonaws.com",
                "SourceArn":"arn:aws:s3:::photos"}"#,
        );
        let ok = |statements: &[Value], arn: &str| {
            allows_service(statements, "s3.amazonaws.com", arn, "000000000000")
        };
        assert!(ok(std::slice::from_ref(&s3), "arn:aws:s3:::photos"));
        assert!(!ok(std::slice::from_ref(&s3), "arn:aws:s3:::photos2"));
        assert!(!allows_service(
            std::slice::from_ref(&s3),
            "sns.amazonaws.com",
            "arn:aws:s3:::photos",
            "000000000000"
        ));
        let wild = add(
            r#"{"StatementId":"w","Action":"lambda:*","Principal":"s3.amazonaws.com",
                "SourceArn":"arn:aws:s3:::up-*-?"}"#,
        );
        assert!(ok(std::slice::from_ref(&wild), "arn:aws:s3:::up-photos-1"));
        assert!(!ok(
            std::slice::from_ref(&wild),
            "arn:aws:s3:::up-photos-12"
        ));
        let any = add(
            r#"{"StatementId":"a","Action":"lambda:InvokeFunction","Principal":"s3.amazonaws.com"}"#,
        );
        assert!(ok(std::slice::from_ref(&any), "arn:aws:s3:::anything"));
        let account = |a: &str| {
            add(&format!(
                r#"{{"StatementId":"c","Action":"lambda:InvokeFunction","Principal":"s3.amazonaws.com",
                    "SourceAccount":"{a}"}}"#
            ))
        };
        assert!(ok(&[account("000000000000")], "arn:aws:s3:::b"));
        assert!(!ok(&[account("111122223333")], "arn:aws:s3:::b"));
        // Another action, or a condition the host cannot evaluate: no.
        let url = add(
            r#"{"StatementId":"u","Action":"lambda:InvokeFunctionUrl","Principal":"*","FunctionUrlAuthType":"NONE"}"#,
        );
        assert!(!ok(&[url], "arn:aws:s3:::b"));
        let org = add(
            r#"{"StatementId":"o","Action":"lambda:InvokeFunction","Principal":"s3.amazonaws.com",
                "PrincipalOrgID":"o-123"}"#,
        );
        assert!(!ok(&[org], "arn:aws:s3:::b"));
        assert!(!ok(&[], "arn:aws:s3:::b"));
    }

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        for (pattern, text, want) in [
            ("*", "", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("x**", "x", true),
        ] {
            assert_eq!(
                glob(pattern.as_bytes(), text.as_bytes()),
                want,
                "{pattern} {text}"
            );
        }
    }
}
