//! TagResource, UntagResource and ListTags on functions (Lambda tags a
//! function, not its versions or aliases), and the checks that
//! CreateFunction's `Tags` shares.
//!
//! The resource is a function's ARN, unqualified. The answers are
//! Lambda's: a qualified ARN is `InvalidParameterValueException` before
//! anything is looked up, a missing function `ResourceNotFoundException`
//! naming its ARN, and at most [`limits::TAGS_PER_FUNCTION`] tags a
//! function, counted with those it has (the store counts them in the
//! write's own transaction).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use mayfly_host::names::ACCOUNT_ID;
use mayfly_proto::limits;
use mayfly_store::{StoreError, Tags};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::request::{blocking, invalid_value, parse_json};
use crate::{AppState, SharedState};

/// What of Lambda's `TaggableResource` pattern names a function, the one
/// kind of taggable resource Mayfly has.
pub const FUNCTION_RESOURCE_PATTERN: &str = r"arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?";

/// The longest resource ARN Lambda accepts.
pub const MAX_RESOURCE_CHARS: usize = 256;

/// Lambda's answer to a version's or an alias's ARN.
pub const QUALIFIED_MESSAGE: &str =
    "Tags on function aliases and versions are not supported. Please specify a function ARN.";

/// Lambda's answer when a function would have more than
/// [`limits::TAGS_PER_FUNCTION`] tags.
pub const TOO_MANY_MESSAGE: &str = "Number of tags exceeds resource tag limit.";

/// Lambda's answer to a TagResource without a tag.
pub const NO_TAGS_MESSAGE: &str = "An error occurred and the request cannot be processed.";

/// A function ARN, split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FunctionArn<'a> {
    account: &'a str,
    name: &'a str,
    qualifier: Option<&'a str>,
}

/// `[a-zA-Z0-9-_]+`.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}`.
fn is_region(region: &str) -> bool {
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    let parts: Vec<&str> = region.split('-').collect();
    let (area, kind, place, number) = match parts.as_slice() {
        [area, place, number] => (*area, None, *place, *number),
        [area, kind, place, number] => (*area, Some(*kind), *place, *number),
        _ => return false,
    };
    area.len() == 2
        && lower(area)
        && kind.is_none_or(|k| {
            k == "gov" || k == "iso" || (k.len() == 4 && k.starts_with("iso") && lower(k))
        })
        && lower(place)
        && number.len() == 1
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// The parts of an ARN that matches [`FUNCTION_RESOURCE_PATTERN`].
fn split_function_arn(arn: &str) -> Option<FunctionArn<'_>> {
    let rest = arn.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    let partition_ok = partition
        .strip_prefix("aws")
        .is_some_and(|p| p.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'));
    let rest = rest.strip_prefix("lambda:")?;
    let (region, rest) = rest.split_once(':')?;
    let (account, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("function:")?;
    let (name, qualifier) = match rest.split_once(':') {
        Some((name, qualifier)) => (name, Some(qualifier)),
        None => (rest, None),
    };
    let ok = partition_ok
        && is_region(region)
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && is_name(name)
        && qualifier.is_none_or(|q| q == "$LATEST" || is_name(q));
    ok.then_some(FunctionArn {
        account,
        name,
        qualifier,
    })
}

/// The name of the function that a tag operation's resource ARN names, in
/// the order Lambda checks: the ARN's shape (`ValidationException`), then
/// that it has no qualifier (`InvalidParameterValueException`); an ARN of
/// another account names no function here (`ResourceNotFoundException`).
pub fn function_of(resource: &str) -> ApiResult<&str> {
    if resource.chars().count() > MAX_RESOURCE_CHARS {
        return Err(invalid_value(
            resource,
            "resource",
            &format!("Member must have length less than or equal to {MAX_RESOURCE_CHARS}"),
        ));
    }
    let arn = split_function_arn(resource).ok_or_else(|| {
        invalid_value(
            resource,
            "resource",
            &format!("Member must satisfy regular expression pattern: {FUNCTION_RESOURCE_PATTERN}"),
        )
    })?;
    if arn.qualifier.is_some() {
        return Err(ApiError::invalid_parameter(QUALIFIED_MESSAGE));
    }
    if arn.account != ACCOUNT_ID {
        return Err(not_found(resource));
    }
    Ok(arn.name)
}

/// Lambda's answer for a function that does not exist: its ARN.
fn not_found(resource: &str) -> ApiError {
    ApiError::not_found(format!("Function not found: {resource}"))
}

/// A store error of a tag operation on `resource`, as Lambda answers it.
fn store_error(resource: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } => not_found(resource),
        other => other.into(),
    }
}

/// A map as Lambda's validation messages show it: `{k1=v1, k2=v2}`.
fn map_text(tags: &Tags) -> String {
    let pairs: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// Whether a key starts with [`limits::RESERVED_TAG_PREFIX`], in any case.
pub fn is_reserved_key(key: &str) -> bool {
    let prefix = limits::RESERVED_TAG_PREFIX;
    key.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// Checks tags as Lambda does, for TagResource and CreateFunction: keys of
/// 1 to 128 characters and values of at most 256 (`ValidationException`),
/// no key that starts with `aws:` in any case and at most
/// [`limits::TAGS_PER_FUNCTION`] of them (`InvalidParameterValueException`).
/// Whether the function can take them besides those it has is for the
/// store to say.
pub fn check_tags(tags: &Tags) -> ApiResult<()> {
    let (keys, values) = (limits::TAG_KEY_CHARS, limits::TAG_VALUE_CHARS);
    if tags.keys().any(|k| !keys.contains(&k.chars().count())) {
        return Err(invalid_value(
            map_text(tags),
            "tags",
            &format!(
                "Map keys must satisfy constraint: [Member must have length less than or equal \
                 to {}, Member must have length greater than or equal to {}]",
                keys.end(),
                keys.start()
            ),
        ));
    }
    if tags.values().any(|v| !values.contains(&v.chars().count())) {
        return Err(invalid_value(
            map_text(tags),
            "tags",
            &format!(
                "Map value must satisfy constraint: [Member must have length less than or equal \
                 to {}, Member must have length greater than or equal to {}]",
                values.end(),
                values.start()
            ),
        ));
    }
    let reserved: Vec<&str> = tags
        .keys()
        .filter(|k| is_reserved_key(k))
        .map(String::as_str)
        .collect();
    if !reserved.is_empty() {
        return Err(ApiError::invalid_parameter(format!(
            "Tag keys starting with '{}' are reserved for AWS use and cannot be set (in any \
             case). Reserved keys used in this request: {}",
            limits::RESERVED_TAG_PREFIX,
            reserved.join(", ")
        )));
    }
    if tags.len() > limits::TAGS_PER_FUNCTION {
        return Err(ApiError::invalid_parameter(TOO_MANY_MESSAGE));
    }
    if let Some(rules) = tags.get(mayfly_egress::FUNCTION_TAG) {
        if let Err(e) = mayfly_egress::Rules::parse_tag(rules) {
            return Err(ApiError::invalid_parameter(format!(
                "The tag {} must be egress rules separated by spaces \
                 (CIDR[:PORTS], NAME[:PORTS] or *): {e}",
                mayfly_egress::FUNCTION_TAG
            )));
        }
    }
    Ok(())
}

/// TagResource's body.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResource {
    tags: Option<Tags>,
}

/// The `tagKeys` of UntagResource's query string (`tagKeys=a&tagKeys=b`),
/// in their order; Lambda's `ValidationException` when there are none.
pub fn tag_keys(query: Option<&str>) -> ApiResult<Vec<String>> {
    let keys: Vec<String> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(name, _)| name == "tagKeys")
        .map(|(_, key)| key.into_owned())
        .collect();
    if keys.is_empty() {
        return Err(ApiError::validation(
            "1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: \
             Member must not be null",
        ));
    }
    Ok(keys)
}

/// `POST /2017-03-31/tags/{arn}`: TagResource.
pub async fn tag(
    State(state): State<SharedState>,
    Path(resource): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let name = function_of(&resource)?.to_string();
    let req: TagResource = if body.is_empty() {
        TagResource::default()
    } else {
        parse_json(&body)?
    };
    let tags = req.tags.ok_or_else(|| {
        ApiError::validation(
            "1 validation error detected: Value null at 'tags' failed to satisfy constraint: \
             Member must not be null",
        )
    })?;
    if tags.is_empty() {
        return Err(ApiError::invalid_parameter(NO_TAGS_MESSAGE));
    }
    check_tags(&tags)?;
    blocking(&state, move |state: &AppState| {
        state
            .store
            .tag_function(&name, &tags)
            .map_err(|e| store_error(&resource, e))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /2017-03-31/tags/{arn}?tagKeys=...`: UntagResource.
pub async fn untag(
    State(state): State<SharedState>,
    Path(resource): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<StatusCode> {
    let name = function_of(&resource)?.to_string();
    let keys = tag_keys(query.as_deref())?;
    blocking(&state, move |state: &AppState| {
        state
            .store
            .untag_function(&name, &keys)
            .map_err(|e| store_error(&resource, e))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /2017-03-31/tags/{arn}`: ListTags.
pub async fn list(
    State(state): State<SharedState>,
    Path(resource): Path<String>,
) -> ApiResult<Json<Value>> {
    let name = function_of(&resource)?;
    let tags = state
        .store
        .get_tags(name)
        .map_err(|e| store_error(&resource, e))?;
    Ok(Json(json!({ "Tags": tags })))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:lambda:us-east-1:000000000000:function:echo";

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn function_arns_name_their_function() {
        assert_eq!(function_of(ARN).unwrap(), "echo");
        for ok in [
            "arn:aws:lambda:eu-west-1:000000000000:function:my_fn-2",
            "arn:aws-cn:lambda:cn-north-1:000000000000:function:f",
            "arn:aws-us-gov:lambda:us-gov-west-1:000000000000:function:f",
            "arn:aws-iso-b:lambda:us-isob-east-1:000000000000:function:f",
            "arn:aws:lambda:us-iso-east-1:000000000000:function:f",
        ] {
            assert_eq!(function_of(ok).unwrap(), ok.rsplit(':').next().unwrap());
        }
    }

    #[test]
    fn other_shapes_are_validation_errors_with_lambdas_pattern() {
        for bad in [
            "",
            "echo",
            "arn:aws:something",
            "000000000000:function:echo",
            "arn::lambda:us-east-1:000000000000:function:echo",
            "arn:gcp:lambda:us-east-1:000000000000:function:echo",
            "arn:aws:s3:us-east-1:000000000000:function:echo",
            "arn:aws:lambda:useast1:000000000000:function:echo",
            "arn:aws:lambda:us-east-12:000000000000:function:echo",
            "arn:aws:lambda:USA-east-1:000000000000:function:echo",
            "arn:aws:lambda:us-mil-east-1:000000000000:function:echo",
            "arn:aws:lambda:us-east-1:00000000000:function:echo",
            "arn:aws:lambda:us-east-1:000000000000:foobar:echo",
            "arn:aws:lambda:us-east-1:000000000000:layer:echo",
            "arn:aws:lambda:us-east-1:000000000000:function:",
            "arn:aws:lambda:us-east-1:000000000000:function:a b",
            "arn:aws:lambda:us-east-1:000000000000:function:echo:",
            "arn:aws:lambda:us-east-1:000000000000:function:echo:1:2",
            "arn:aws:lambda:us-east-1:000000000000:function:echo:$NEXT",
        ] {
            let e = function_of(bad).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, "ValidationException"),
                "{bad}"
            );
            assert_eq!(
                e.message,
                format!(
                    "1 validation error detected: Value '{bad}' at 'resource' failed to satisfy \
                     constraint: Member must satisfy regular expression pattern: \
                     {FUNCTION_RESOURCE_PATTERN}"
                )
            );
        }
        let long = format!("{ARN}{}", "x".repeat(MAX_RESOURCE_CHARS));
        let e = function_of(&long).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(
            e.message.ends_with("length less than or equal to 256"),
            "{}",
            e.message
        );
    }

    #[test]
    fn versions_and_aliases_are_refused_before_any_lookup() {
        for q in ["1", "$LATEST", "live"] {
            // Even of another account: the qualifier is checked first.
            for account in ["000000000000", "123456789012"] {
                let arn = format!("arn:aws:lambda:us-east-1:{account}:function:echo:{q}");
                let e = function_of(&arn).unwrap_err();
                assert_eq!(
                    (e.status.as_u16(), e.code, e.message.as_str()),
                    (400, "InvalidParameterValueException", QUALIFIED_MESSAGE)
                );
            }
        }
        let other = "arn:aws:lambda:us-east-1:123456789012:function:echo";
        let e = function_of(other).unwrap_err();
        assert_eq!(
            (e.status.as_u16(), e.code),
            (404, "ResourceNotFoundException")
        );
        assert_eq!(e.message, format!("Function not found: {other}"));
        let e = store_error(
            ARN,
            StoreError::NotFound {
                kind: mayfly_store::Kind::Function,
                name: "echo".into(),
            },
        );
        assert_eq!(e.message, format!("Function not found: {ARN}"));
    }

    #[test]
    fn tag_checks_are_lambdas() {
        assert!(check_tags(&tags(&[("k", ""), ("é".repeat(128).as_str(), "v")])).is_ok());
        assert!(check_tags(&tags(&[("k", &"é".repeat(256))])).is_ok());
        assert!(check_tags(&Tags::new()).is_ok());

        let e = check_tags(&tags(&[("", "v")])).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "ValidationException"));
        assert_eq!(
            e.message,
            "1 validation error detected: Value '{=v}' at 'tags' failed to satisfy constraint: \
             Map keys must satisfy constraint: [Member must have length less than or equal to \
             128, Member must have length greater than or equal to 1]"
        );
        let e = check_tags(&tags(&[("a", "1"), (&"k".repeat(129), "v")])).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(e.message.contains("Map keys must satisfy"), "{}", e.message);
        let e = check_tags(&tags(&[("a", "1"), ("b", &"v".repeat(257))])).unwrap_err();
        assert_eq!(e.code, "ValidationException");
        assert!(
            e.message.contains(
                "Map value must satisfy constraint: [Member must have length less than or equal \
                 to 256, Member must have length greater than or equal to 0]"
            ),
            "{}",
            e.message
        );
        assert!(e.message.contains("Value '{a=1, b=vvv"), "{}", e.message);

        for reserved in ["aws:x", "AWS:x", "Aws:", "aWs:cloudformation:stack-name"] {
            let e = check_tags(&tags(&[("ok", "v"), (reserved, "v")])).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.code),
                (400, "InvalidParameterValueException"),
                "{reserved}"
            );
            assert!(
                e.message.ends_with(&format!(": {reserved}")),
                "{}",
                e.message
            );
        }
        for fine in ["aws", "awsx:y", "x:aws:y", "aws-x"] {
            assert!(check_tags(&tags(&[(fine, "v")])).is_ok(), "{fine}");
        }
        // Values may start with it.
        assert!(check_tags(&tags(&[("k", "aws:v")])).is_ok());

        let fifty: Tags = (0..50).map(|i| (format!("k{i}"), "v".into())).collect();
        assert!(check_tags(&fifty).is_ok());
        let mut fifty_one = fifty;
        fifty_one.insert("one-more".into(), "v".into());
        let e = check_tags(&fifty_one).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            ("InvalidParameterValueException", TOO_MANY_MESSAGE)
        );
    }

    #[test]
    fn untag_takes_every_tag_key_of_the_query() {
        assert_eq!(
            tag_keys(Some("tagKeys=a&tagKeys=b%20c&other=x&tagKeys=aws%3Ax")).unwrap(),
            ["a", "b c", "aws:x"]
        );
        for none in [None, Some(""), Some("other=x"), Some("TagKeys=a")] {
            let e = tag_keys(none).unwrap_err();
            assert_eq!((e.status.as_u16(), e.code), (400, "ValidationException"));
            assert!(
                e.message.contains("Value null at 'tagKeys'"),
                "{}",
                e.message
            );
        }
    }
}
