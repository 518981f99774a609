//! CORS for a URL with a `Cors` configuration, as Lambda applies it: the
//! URL answers preflight requests itself (the function is not invoked),
//! and every other response gets the configuration's headers in place of
//! any the function set.

use crate::config::Cors;
use crate::response::HttpResponse;

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
pub fn is_preflight(method: &str, origin: Option<&str>, request_method: Option<&str>) -> bool {
    method.eq_ignore_ascii_case("OPTIONS") && origin.is_some() && request_method.is_some()
}

fn contains(list: &Option<Vec<String>>, item: &str) -> bool {
    list.as_ref()
        .is_some_and(|l| l.iter().any(|i| i == "*" || i.eq_ignore_ascii_case(item)))
}

/// The `Access-Control-Allow-Origin` value for `origin`, if it is allowed:
/// the origin itself, or `*` when any is and credentials are not.
fn allowed_origin(cors: &Cors, origin: &str) -> Option<String> {
    let origins = cors.allow_origins.as_ref()?;
    if origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        return Some(origin.to_string());
    }
    if origins.iter().any(|o| o == "*") {
        return Some(if cors.allow_credentials == Some(true) {
            origin.to_string()
        } else {
            "*".to_string()
        });
    }
    None
}

fn joined(list: &Option<Vec<String>>) -> Option<String> {
    list.as_ref().filter(|l| !l.is_empty()).map(|l| l.join(","))
}

/// The answer to a preflight from `origin` for `request_method` with
/// `request_headers` (a comma-separated list): 200, with the allowing
/// headers only if the origin, the method and every header are allowed.
pub fn preflight(
    cors: &Cors,
    origin: &str,
    request_method: &str,
    request_headers: Option<&str>,
) -> HttpResponse {
    let mut response = HttpResponse {
        status: 200,
        headers: vec![("vary".into(), "Origin".into())],
        body: Vec::new(),
    };
    let Some(allow_origin) = allowed_origin(cors, origin) else {
        return response;
    };
    if !contains(&cors.allow_methods, request_method) {
        return response;
    }
    let asked: Vec<&str> = request_headers
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    if !asked.iter().all(|h| contains(&cors.allow_headers, h)) {
        return response;
    }
    let headers = &mut response.headers;
    headers.push(("access-control-allow-origin".into(), allow_origin));
    if let Some(methods) = joined(&cors.allow_methods) {
        headers.push(("access-control-allow-methods".into(), methods));
    }
    if !asked.is_empty() {
        let allowed = if cors
            .allow_headers
            .as_ref()
            .is_some_and(|h| h.iter().any(|h| h == "*"))
        {
            asked.join(",")
        } else {
            joined(&cors.allow_headers).unwrap_or_default()
        };
        headers.push(("access-control-allow-headers".into(), allowed));
    }
    if cors.allow_credentials == Some(true) {
        headers.push(("access-control-allow-credentials".into(), "true".into()));
    }
    if let Some(age) = cors.max_age {
        headers.push(("access-control-max-age".into(), age.to_string()));
    }
    response
}

/// Puts the configuration's CORS headers on `response` for a request from
/// `origin`, replacing any the function set.
pub fn apply(cors: &Cors, origin: Option<&str>, response: &mut HttpResponse) {
    response
        .headers
        .retain(|(name, _)| !name.to_ascii_lowercase().starts_with("access-control-"));
    let Some(allow_origin) = origin.and_then(|o| allowed_origin(cors, o)) else {
        return;
    };
    let headers = &mut response.headers;
    headers.push(("access-control-allow-origin".into(), allow_origin));
    if cors.allow_credentials == Some(true) {
        headers.push(("access-control-allow-credentials".into(), "true".into()));
    }
    if let Some(expose) = joined(&cors.expose_headers) {
        headers.push(("access-control-expose-headers".into(), expose));
    }
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("vary")) {
        headers.push(("vary".into(), "Origin".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Cors {
        Cors {
            allow_origins: Some(vec!["https://app.example.com".into()]),
            allow_methods: Some(vec!["GET".into(), "POST".into()]),
            allow_headers: Some(vec!["content-type".into(), "x-token".into()]),
            expose_headers: Some(vec!["x-total".into()]),
            max_age: Some(300),
            allow_credentials: Some(true),
        }
    }

    #[test]
    fn an_allowed_preflight_gets_every_allowing_header() {
        assert!(is_preflight("OPTIONS", Some("o"), Some("GET")));
        assert!(!is_preflight("OPTIONS", Some("o"), None));
        let response = preflight(
            &config(),
            "https://app.example.com",
            "POST",
            Some("Content-Type, X-Token"),
        );
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            response.header("access-control-allow-methods"),
            Some("GET,POST")
        );
        assert_eq!(
            response.header("access-control-allow-headers"),
            Some("content-type,x-token")
        );
        assert_eq!(response.header("access-control-max-age"), Some("300"));
        assert_eq!(
            response.header("access-control-allow-credentials"),
            Some("true")
        );
    }

    #[test]
    fn a_preflight_from_elsewhere_or_for_another_method_or_header_gets_none() {
        for (origin, method, headers) in [
            ("https://evil.example.com", "GET", None),
            ("https://app.example.com", "DELETE", None),
            ("https://app.example.com", "GET", Some("x-other")),
        ] {
            let response = preflight(&config(), origin, method, headers);
            assert_eq!(response.status, 200);
            assert_eq!(response.header("access-control-allow-origin"), None);
        }
    }

    #[test]
    fn responses_get_the_configured_headers_instead_of_the_functions() {
        let mut response = HttpResponse {
            status: 200,
            headers: vec![("access-control-allow-origin".into(), "*".into())],
            body: Vec::new(),
        };
        apply(&config(), Some("https://app.example.com"), &mut response);
        assert_eq!(
            response.header("access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(
            response.header("access-control-expose-headers"),
            Some("x-total")
        );
        let mut other = response.clone();
        apply(&config(), Some("https://evil.example.com"), &mut other);
        assert_eq!(other.header("access-control-allow-origin"), None);
        let any = Cors {
            allow_origins: Some(vec!["*".into()]),
            ..Cors::default()
        };
        let mut star = HttpResponse::message(200, "x");
        apply(&any, Some("https://x.example"), &mut star);
        assert_eq!(star.header("access-control-allow-origin"), Some("*"));
    }
}
