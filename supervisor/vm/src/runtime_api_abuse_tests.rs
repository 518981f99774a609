//! A hostile guest against the runtime API: what it can make the host hold
//! stays bounded, ambiguous framing is refused, and its reports are
//! clamped. Each refusal must also end the invocation with its violation.

use super::tests::{all_output, api, exchange, now, post, send_all, violation, ID, NEXT};
use super::*;

fn response_path() -> String {
    format!("/2018-06-01/runtime/invocation/{ID}/response")
}

/// Delivers the event on `conn` and drops its events.
fn delivered() -> (RuntimeApi, Connection) {
    let mut api = api();
    let mut conn = Connection::new();
    exchange(&mut api, &mut conn, NEXT);
    api.take_events();
    (api, conn)
}

#[test]
fn a_guest_that_pipelines_and_never_reads_is_not_buffered() {
    let (mut api, mut conn) = delivered();
    let request = b"GET /2018-06-01/runtime/nothing HTTP/1.1\r\nHost: h\r\n\r\n";
    let stream: Vec<u8> = request.repeat(20_000);
    // As the network does it: input only while the connection wants it;
    // the guest never reads, so nothing is ever sent.
    let mut fed = 0;
    for piece in stream.chunks(1460) {
        if !conn.wants_input() {
            break;
        }
        conn.receive(&mut api, piece, now());
        fed += piece.len();
    }
    assert_eq!(fed, 1460, "input was taken while an answer was unsent");
    let out = all_output(&conn);
    assert_eq!(out.matches("HTTP/1.1 404").count(), 1, "{out}");
    assert!(conn.input.len() <= 1460);
    assert!(!conn.resume(&mut api, now()));

    // A guest that does read gets every answer, in order.
    let (mut api, mut conn) = delivered();
    let mut answers = 0;
    for piece in stream[..request.len() * 50].chunks(1000) {
        conn.receive(&mut api, piece, now());
        loop {
            let out = all_output(&conn);
            answers += out.matches("HTTP/1.1 404").count();
            send_all(&mut conn);
            if !conn.resume(&mut api, now()) {
                break;
            }
        }
    }
    assert_eq!(answers, 50);
}

#[test]
fn a_held_next_stops_input_until_it_is_answered() {
    let mut api = RuntimeApi::without_event();
    let mut conn = Connection::new();
    conn.receive(&mut api, NEXT, now());
    assert!(!conn.wants_input());
    api.deliver(super::tests::invocation());
    assert!(conn.resume(&mut api, now()));
    assert!(all_output(&conn).starts_with("HTTP/1.1 200 OK"));
}

fn assert_refused(request: &[u8], status: &str, error_type: &str) -> Violation {
    let (mut api, mut conn) = delivered();
    let answer = exchange(&mut api, &mut conn, request);
    assert!(
        answer.starts_with(&format!("HTTP/1.1 {status}")),
        "{:?} answered {answer}",
        String::from_utf8_lossy(request)
    );
    assert!(conn.should_close(), "{answer}");
    let v = violation(&mut api);
    assert_eq!(v.error_type, error_type, "{v:?}");
    assert!(api.is_done());
    v
}

#[test]
fn ambiguous_lengths_are_refused() {
    let path = response_path();
    for headers in [
        "Content-Length: 1\r\nContent-Length: 1\r\n",
        "Content-Length: 1\r\nContent-Length: 2\r\n",
        "Content-Length: 1, 1\r\n",
        "Content-Length: +1\r\n",
        "Content-Length: -1\r\n",
        "Content-Length: 0x1\r\n",
        "Content-Length: 1 1\r\n",
        "Content-Length: 99999999999999999999999\r\n",
        "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ] {
        let request = format!("POST {path} HTTP/1.1\r\n{headers}\r\n1");
        let v = assert_refused(request.as_bytes(), "400", ERROR_INVALID_REQUEST);
        assert!(!v.message.is_empty());
    }
    let request = format!("POST {path} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_refused(request.as_bytes(), "400", ERROR_INVALID_REQUEST);
    // Space around a single valid length is only whitespace.
    let (mut api, mut conn) = delivered();
    let request = format!("POST {path} HTTP/1.1\r\nContent-Length:  2 \r\n\r\n42");
    assert!(exchange(&mut api, &mut conn, request.as_bytes()).contains("202 Accepted"));
}

#[test]
fn a_chunked_response_is_decoded_and_what_follows_it_kept() {
    let (mut api, mut conn) = delivered();
    let request = format!(
        "POST {} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{\"\r\n5\r\na\":1}}\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
        response_path()
    );
    for b in request.as_bytes() {
        conn.receive(&mut api, std::slice::from_ref(b), now());
    }
    assert!(all_output(&conn).contains("202 Accepted"));
    let events = api.take_events();
    assert!(
        events.iter().any(|e| matches!(
            e,
            ApiEvent::Finished { result: GuestResult::Response(b), .. } if &b[..] == br#"{"a":1}"#
        )),
        "{events:?}"
    );
    send_all(&mut conn);
    assert!(conn.resume(&mut api, now()));
    assert!(all_output(&conn).starts_with("HTTP/1.1 404"));
}

#[test]
fn invalid_and_endless_chunked_bodies_end_the_invocation() {
    let head = format!(
        "POST {} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        response_path()
    );
    let v = assert_refused(
        format!("{head}zz\r\n").as_bytes(),
        "400",
        ERROR_INVALID_REQUEST,
    );
    assert!(v.message.contains("chunked"), "{v:?}");

    // 64 KiB chunks without end: refused once past the response limit,
    // having held no more than that.
    let (mut api, mut conn) = delivered();
    conn.receive(&mut api, head.as_bytes(), now());
    let chunk = [
        format!("{:x}\r\n", 65536).into_bytes(),
        vec![b'x'; 65536],
        b"\r\n".to_vec(),
    ]
    .concat();
    let mut sent = 0;
    while conn.wants_input() && sent < 2 * MAX_RESPONSE_BYTES {
        conn.receive(&mut api, &chunk, now());
        sent += 65536;
        assert!(conn.input.len() <= chunk.len());
    }
    assert!(sent <= MAX_RESPONSE_BYTES + 65536, "{sent}");
    assert!(all_output(&conn).starts_with("HTTP/1.1 413"));
    let v = violation(&mut api);
    assert_eq!(v.error_type, ERROR_RESPONSE_TOO_LARGE);
}

#[test]
fn huge_heads_and_header_floods_are_limits() {
    let mut head = format!("POST {} HTTP/1.1\r\nX-Junk: ", response_path()).into_bytes();
    head.extend(std::iter::repeat_n(b'a', MAX_HEAD_BYTES + 1));
    let v = assert_refused(&head, "431", ERROR_LIMIT);
    assert!(v.message.contains("65536"), "{v:?}");
    // Complete, but too large, in one piece.
    head.extend_from_slice(b"\r\n\r\n");
    assert_refused(&head, "431", ERROR_LIMIT);
    let many: String = (0..MAX_HEADERS + 1)
        .map(|i| format!("X-{i}: 1\r\n"))
        .collect();
    let request = format!("GET /x HTTP/1.1\r\n{many}\r\n");
    assert_refused(request.as_bytes(), "431", ERROR_LIMIT);
}

#[test]
fn an_error_body_over_its_limit_is_a_limit() {
    let path = format!("/2018-06-01/runtime/invocation/{ID}/error");
    let request = format!(
        "POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY_BYTES + 1
    );
    assert_refused(request.as_bytes(), "413", ERROR_LIMIT);
}

#[test]
fn reported_memory_is_clamped_and_only_news_is_an_event() {
    let mut api = api();
    api.set_memory_limit(128 << 20);
    let mut conn = Connection::new();
    let next = "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nMayfly-Max-Memory-Bytes: 99999999999999999\r\n\r\n";
    exchange(&mut api, &mut conn, next.as_bytes());
    assert!(api.take_events().contains(&ApiEvent::MaxMemory(128 << 20)));
    for _ in 0..3 {
        exchange(
            &mut api,
            &mut conn,
            b"GET /x HTTP/1.1\r\nMayfly-Max-Memory-Bytes: 1048576\r\n\r\n",
        );
    }
    assert!(api.take_events().is_empty());
    let body = post(
        &response_path(),
        "Mayfly-Max-Memory-Bytes: 18446744073709551615\r\n",
        "1",
    );
    exchange(&mut api, &mut conn, &body);
    let events = api.take_events();
    assert!(
        !events.iter().any(|e| matches!(e, ApiEvent::MaxMemory(_))),
        "{events:?}"
    );
}

#[test]
fn nothing_counts_after_a_violation() {
    let (mut api, mut conn) = delivered();
    api.violate(Violation::limit("test"));
    api.violate(Violation::limit("again"));
    assert_eq!(violation(&mut api).message, "test");
    let body = post(&response_path(), "", "1");
    assert_eq!(exchange(&mut api, &mut conn, &body), "");
    assert!(api.take_events().is_empty());
}

#[test]
fn large_bodies_on_several_connections_at_once_are_a_limit() {
    let (mut api, mut first) = delivered();
    let big = 5 * 1024 * 1024;
    let error_path = format!("/2018-06-01/runtime/invocation/{ID}/error");
    let head = format!("POST {error_path} HTTP/1.1\r\nContent-Length: {big}\r\n\r\n");
    first.receive(&mut api, head.as_bytes(), now());
    first.receive(&mut api, &vec![b'x'; 1000], now());
    assert_eq!(api.body_bytes_in_flight(), big);

    // A connection that goes away gives its claim back.
    let mut gone = Connection::new();
    let small = format!("POST {error_path} HTTP/1.1\r\nContent-Length: 1000\r\n\r\n");
    gone.receive(&mut api, small.as_bytes(), now());
    assert_eq!(api.body_bytes_in_flight(), big + 1000);
    gone.release(&mut api);
    assert_eq!(api.body_bytes_in_flight(), big);

    let mut second = Connection::new();
    let answer = exchange(&mut api, &mut second, head.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let v = violation(&mut api);
    assert_eq!(v.error_type, ERROR_LIMIT);
    assert!(v.message.contains("several connections"), "{v:?}");
}

#[test]
fn a_completed_body_gives_its_claim_back() {
    let (mut api, mut conn) = delivered();
    let request = b"GET /x HTTP/1.1\r\nContent-Length: 3000000\r\n\r\n";
    for _ in 0..4 {
        conn.receive(&mut api, request, now());
        conn.receive(&mut api, &vec![b'y'; 3_000_000], now());
        assert!(all_output(&conn).starts_with("HTTP/1.1 404"));
        send_all(&mut conn);
        assert_eq!(api.body_bytes_in_flight(), 0);
    }
    let head = format!(
        "POST {} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        response_path()
    );
    conn.receive(&mut api, head.as_bytes(), now());
    conn.receive(&mut api, b"4\r\nabcd\r\n", now());
    assert_eq!(api.body_bytes_in_flight(), 4);
    conn.receive(&mut api, b"0\r\n\r\n", now());
    assert_eq!(api.body_bytes_in_flight(), 0);
    assert!(all_output(&conn).contains("202 Accepted"));
}

#[test]
fn a_huge_error_type_is_cut() {
    let (mut api, mut conn) = delivered();
    let body = format!(
        r#"{{"errorType":"{}","errorMessage":"m"}}"#,
        "é".repeat(1000)
    );
    let path = format!("/2018-06-01/runtime/invocation/{ID}/error");
    exchange(&mut api, &mut conn, &post(&path, "", &body));
    let events = api.take_events();
    let Some(ApiEvent::Finished {
        result: GuestResult::Error { error_type, .. },
        ..
    }) = events.last()
    else {
        panic!("{events:?}")
    };
    assert_eq!(error_type.len(), MAX_ERROR_TYPE_BYTES);
    assert!(error_type.chars().all(|c| c == 'é'));
}

#[test]
fn a_long_foreign_request_id_is_quoted_short() {
    let (mut api, mut conn) = delivered();
    let id = "z".repeat(10_000);
    let path = format!("/2018-06-01/runtime/invocation/{id}/response");
    exchange(&mut api, &mut conn, &post(&path, "", "1"));
    let v = violation(&mut api);
    assert_eq!(v.error_type, ERROR_INVALID_REQUEST);
    assert!(v.message.len() < 200, "{}", v.message);
}
