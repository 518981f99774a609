//! Which URL a request is for: by its host name,
//! `<url-id>.lambda-url.<region>.<domain>` (Lambda's form, with the host's
//! domain: `localhost` by default, which curl and browsers resolve to
//! loopback), or by its path, `/lambda-url/<url-id>/...`, for clients that
//! cannot choose a host name.

use crate::config::is_url_id;

/// The path prefix of the path form.
pub const PATH_PREFIX: &str = "/lambda-url/";

/// The URL a request names, and the path the function sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The URL's id.
    pub url_id: &'a str,
    /// The path the function sees (`/` at least).
    pub path: &'a str,
}

/// The URL id in a `Host` header (`host[:port]`) under `domain`.
pub fn url_id_of_host<'a>(host: &'a str, domain: &str) -> Option<&'a str> {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    let (id, rest) = name.split_once(".lambda-url.")?;
    let (_region, tail) = rest.split_once('.')?;
    (tail.eq_ignore_ascii_case(domain) && is_url_id(id)).then_some(id)
}

/// The request's target: by host name first, else by the path form.
pub fn target<'a>(host: Option<&'a str>, path: &'a str, domain: &str) -> Option<Target<'a>> {
    if let Some(url_id) = host.and_then(|h| url_id_of_host(h, domain)) {
        return Some(Target { url_id, path });
    }
    let rest = path.strip_prefix(PATH_PREFIX)?;
    let (url_id, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    is_url_id(url_id).then_some(Target { url_id, path })
}

/// The URL Lambda's API shows: `http://<url-id>.lambda-url.<region>.<domain>[:port]/`
/// (no port when it is 80).
pub fn url(url_id: &str, region: &str, domain: &str, port: u16) -> String {
    if port == 80 {
        format!("http://{url_id}.lambda-url.{region}.{domain}/")
    } else {
        format!("http://{url_id}.lambda-url.{region}.{domain}:{port}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "abcdefghijklmnopqrstuvwxyz012345";

    #[test]
    fn the_host_name_form_names_the_url() {
        let host = format!("{ID}.lambda-url.us-east-1.localhost:9002");
        assert_eq!(url_id_of_host(&host, "localhost"), Some(ID));
        assert_eq!(
            target(Some(&host), "/hello", "localhost"),
            Some(Target {
                url_id: ID,
                path: "/hello"
            })
        );
        let other = format!("{ID}.lambda-url.us-east-1.example.com");
        assert_eq!(url_id_of_host(&other, "localhost"), None);
        assert_eq!(url_id_of_host(&other, "EXAMPLE.com"), Some(ID));
        assert_eq!(url_id_of_host("localhost:9002", "localhost"), None);
    }

    #[test]
    fn the_path_form_names_the_url_and_strips_itself() {
        let path = format!("/lambda-url/{ID}/hello/there");
        assert_eq!(
            target(Some("127.0.0.1:9002"), &path, "localhost"),
            Some(Target {
                url_id: ID,
                path: "/hello/there"
            })
        );
        let bare = format!("/lambda-url/{ID}");
        assert_eq!(target(None, &bare, "localhost").unwrap().path, "/");
        assert_eq!(target(None, "/lambda-url/nope/x", "localhost"), None);
        assert_eq!(target(None, "/hello", "localhost"), None);
    }

    #[test]
    fn urls_as_the_api_shows_them() {
        assert_eq!(
            url(ID, "us-east-1", "localhost", 9002),
            format!("http://{ID}.lambda-url.us-east-1.localhost:9002/")
        );
        assert_eq!(
            url(ID, "eu-west-1", "example.com", 80),
            format!("http://{ID}.lambda-url.eu-west-1.example.com/")
        );
    }
}
