//! An HTTP request to a URL as the event the function gets: Lambda's
//! payload format 2.0 (`version`, `routeKey`, `rawPath`, `rawQueryString`,
//! `cookies`, `headers`, `queryStringParameters`, `requestContext`, `body`,
//! `isBase64Encoded`).

use base64::Engine;
use serde_json::{json, Map, Value};

/// The request, as the listener received it.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The method (`GET`).
    pub method: &'a str,
    /// The path the function sees, still percent-encoded.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: &'a str,
    /// The headers, in order, names in any case.
    pub headers: Vec<(&'a str, &'a [u8])>,
    /// The body.
    pub body: &'a [u8],
    /// The client's address.
    pub source_ip: String,
    /// `HTTP/1.1`.
    pub protocol: &'a str,
}

/// The caller of an `AWS_IAM` URL, from its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamCaller {
    /// The access key the request was signed with.
    pub access_key: String,
    /// The account.
    pub account_id: String,
}

/// What the event says about where and when.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The URL's id.
    pub url_id: &'a str,
    /// The host name the client used.
    pub domain_name: &'a str,
    /// The function's account.
    pub account_id: &'a str,
    /// The invocation's request id.
    pub request_id: &'a str,
    /// When the request arrived, in milliseconds since the epoch.
    pub time_epoch_ms: u64,
    /// The signed caller, for `AWS_IAM`.
    pub iam: Option<IamCaller>,
}

/// Whether a body of `content_type` reaches the function as text (else it
/// is base64, as Lambda does): text, JSON, XML and JavaScript.
pub fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return true;
    };
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media.starts_with("text/")
        || media == "application/json"
        || media.ends_with("+json")
        || media == "application/xml"
        || media.ends_with("+xml")
        || media == "application/javascript"
}

/// Decodes `%XX` escapes and `+` (a space in a query string).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `12/Mar/2020:19:03:58 +0000` for a time in milliseconds since the epoch.
pub fn clf_time(epoch_ms: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = epoch_ms / 1000;
    let (days, rest) = ((seconds / 86_400) as i64, seconds % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The event for `request`.
pub fn event(request: &Request<'_>, context: &Context<'_>) -> Value {
    let mut headers: Map<String, Value> = Map::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(value).into_owned();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string),
            );
            continue;
        }
        match headers.get_mut(&name) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                headers.insert(name, Value::String(value));
            }
        }
    }
    let mut parameters: Map<String, Value> = Map::new();
    for pair in request.query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (percent_decode(key), percent_decode(value));
        match parameters.get_mut(&key) {
            Some(Value::String(joined)) => {
                joined.push(',');
                joined.push_str(&value);
            }
            _ => {
                parameters.insert(key, Value::String(value));
            }
        }
    }
    let user_agent = headers
        .get("user-agent")
        .cloned()
        .unwrap_or(Value::String(String::new()));
    let content_type = headers.get("content-type").and_then(Value::as_str);
    let (body, base64) = match std::str::from_utf8(request.body) {
        Ok(text) if is_text(content_type) => (text.to_string(), false),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(request.body),
            true,
        ),
    };
    let authorizer = context.iam.as_ref().map(|caller| {
        json!({"iam": {
            "accessKey": caller.access_key,
            "accountId": caller.account_id,
            "callerId": caller.access_key,
            "cognitoIdentity": null,
            "principalOrgId": null,
            "userArn": format!("arn:aws:iam::{}:root", caller.account_id),
            "userId": caller.account_id,
        }})
    });
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": context.account_id,
            "apiId": context.url_id,
            "domainName": context.domain_name,
            "domainPrefix": context.url_id,
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": user_agent,
            },
            "requestId": context.request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": clf_time(context.time_epoch_ms),
            "timeEpoch": context.time_epoch_ms,
        },
        "isBase64Encoded": base64,
    });
    let object = event.as_object_mut().expect("an object");
    if !cookies.is_empty() {
        object.insert("cookies".into(), json!(cookies));
    }
    if !parameters.is_empty() {
        object.insert("queryStringParameters".into(), Value::Object(parameters));
    }
    if !request.body.is_empty() {
        object.insert("body".into(), Value::String(body));
    }
    if let Some(authorizer) = authorizer {
        object["requestContext"]
            .as_object_mut()
            .expect("an object")
            .insert("authorizer".into(), authorizer);
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Context<'static> {
        Context {
            url_id: "abcdefghijklmnopqrstuvwxyz012345",
            domain_name: "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.localhost",
            account_id: "000000000000",
            request_id: "req-1",
            time_epoch_ms: 1_583_348_638_390,
            iam: None,
        }
    }

    #[test]
    fn a_get_with_a_query_headers_and_cookies_is_lambdas_event() {
        let request = Request {
            method: "GET",
            path: "/hello/world",
            query: "x=1&x=2&name=a%20b&plus=c+d",
            headers: vec![
                ("Host", b"h"),
                ("User-Agent", b"curl/7.88"),
                ("Cookie", b"a=1; b=2"),
                ("X-Multi", b"one"),
                ("x-multi", b"two"),
            ],
            body: b"",
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1",
        };
        let event = event(&request, &context());
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "$default");
        assert_eq!(event["rawPath"], "/hello/world");
        assert_eq!(event["rawQueryString"], "x=1&x=2&name=a%20b&plus=c+d");
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(event["headers"]["x-multi"], "one,two");
        assert_eq!(event["headers"]["user-agent"], "curl/7.88");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(
            event["queryStringParameters"],
            json!({"x": "1,2", "name": "a b", "plus": "c d"})
        );
        let rc = &event["requestContext"];
        assert_eq!(rc["http"]["method"], "GET");
        assert_eq!(rc["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(rc["http"]["userAgent"], "curl/7.88");
        assert_eq!(rc["apiId"], "abcdefghijklmnopqrstuvwxyz012345");
        assert_eq!(rc["requestId"], "req-1");
        assert_eq!(rc["time"], "04/Mar/2020:19:03:58 +0000");
        assert_eq!(rc["timeEpoch"], 1_583_348_638_390u64);
        assert!(rc.get("authorizer").is_none());
        assert!(event.get("body").is_none());
        assert_eq!(event["isBase64Encoded"], false);
    }

    #[test]
    fn binary_bodies_are_base64_and_text_ones_are_not() {
        let mut request = Request {
            method: "POST",
            path: "/",
            query: "",
            headers: vec![("content-type", b"application/octet-stream")],
            body: &[0, 159, 146, 150],
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1",
        };
        let binary = event(&request, &context());
        assert_eq!(binary["body"], "AJ+Slg==");
        assert_eq!(binary["isBase64Encoded"], true);
        assert!(binary.get("queryStringParameters").is_none());
        request.headers = vec![("Content-Type", b"application/json; charset=utf-8")];
        request.body = br#"{"a":1}"#;
        let text = event(&request, &context());
        assert_eq!(text["body"], r#"{"a":1}"#);
        assert_eq!(text["isBase64Encoded"], false);
    }

    #[test]
    fn a_signed_caller_is_the_iam_authorizer() {
        let request = Request {
            method: "GET",
            path: "/",
            query: "",
            headers: vec![],
            body: b"",
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1",
        };
        let mut context = context();
        context.iam = Some(IamCaller {
            access_key: "AKIDEXAMPLE".into(),
            account_id: "000000000000".into(),
        });
        let event = event(&request, &context);
        let iam = &event["requestContext"]["authorizer"]["iam"];
        assert_eq!(iam["accessKey"], "AKIDEXAMPLE");
        assert_eq!(iam["accountId"], "000000000000");
        assert_eq!(iam["userArn"], "arn:aws:iam::000000000000:root");
    }

    #[test]
    fn times_and_escapes() {
        assert_eq!(clf_time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(clf_time(1_709_210_096_000), "29/Feb/2024:12:34:56 +0000");
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }
}
