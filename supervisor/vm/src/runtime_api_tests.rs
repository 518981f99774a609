use super::*;

pub(super) const ID: &str = "8f507cfc-0000-4000-8000-000000000001";

pub(super) fn api() -> RuntimeApi {
    RuntimeApi::new(Invocation {
        request_id: ID.into(),
        event: bytes::Bytes::from_static(br#"{"a":1}"#),
        timeout: Duration::from_secs(3),
        invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:echo".into(),
        trace_id: "Root=1-00000001-000000000000000000000000;Parent=0000000000000000;Sampled=0"
            .into(),
    })
}

pub(super) fn now() -> Now {
    Now {
        instant: Instant::now(),
        epoch_ms: 1_700_000_000_000,
    }
}

/// Everything the connection has to send, without sending it.
pub(super) fn all_output(conn: &Connection) -> String {
    let mut out = Vec::new();
    for (i, chunk) in conn.output.iter().enumerate() {
        out.extend_from_slice(if i == 0 { &chunk[conn.sent..] } else { chunk });
    }
    String::from_utf8(out).unwrap()
}

/// Sends everything, in the pieces the connection hands out.
pub(super) fn send_all(conn: &mut Connection) {
    while !conn.pending_output().is_empty() {
        let n = conn.pending_output().len();
        conn.consume_output(n);
    }
}

pub(super) fn exchange(api: &mut RuntimeApi, conn: &mut Connection, request: &[u8]) -> String {
    conn.receive(api, request, now());
    let out = all_output(conn);
    send_all(conn);
    out
}

pub(super) fn post(path: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 10.0.2.2:9001\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

pub(super) const NEXT: &[u8] =
    b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 10.0.2.2:9001\r\nMayfly-Max-Memory-Bytes: 1048576\r\n\r\n";

#[test]
fn next_then_response() {
    let mut api = api();
    let mut conn = Connection::new();
    let answer = exchange(&mut api, &mut conn, NEXT);
    assert_eq!(
        answer,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\
             Lambda-Runtime-Aws-Request-Id: {ID}\r\n\
             Lambda-Runtime-Deadline-Ms: 1700000003000\r\n\
             Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:000000000000:function:echo\r\n\
             Lambda-Runtime-Trace-Id: Root=1-00000001-000000000000000000000000;Parent=0000000000000000;Sampled=0\r\n\
             Mayfly-Host-Clock-Ms: 1700000000000\r\n\r\n{{\"a\":1}}"
        )
    );
    let events = api.take_events();
    assert_eq!(events[0], ApiEvent::MaxMemory(1 << 20));
    assert!(matches!(
        events[1],
        ApiEvent::Delivered {
            deadline_ms: 1_700_000_003_000,
            ..
        }
    ));

    let path = format!("/2018-06-01/runtime/invocation/{ID}/response");
    let answer = exchange(
        &mut api,
        &mut conn,
        &post(&path, "Mayfly-Max-Memory-Bytes: 5000000\r\n", r#"{"a":1}"#),
    );
    assert_eq!(
        answer,
        "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"
    );
    let events = api.take_events();
    assert_eq!(events[0], ApiEvent::MaxMemory(5_000_000));
    assert!(matches!(
        &events[1],
        ApiEvent::Finished { result: GuestResult::Response(body), .. } if body[..] == br#"{"a":1}"#[..]
    ));
    assert!(!conn.should_close());
}

#[test]
fn byte_by_byte_and_pipelined() {
    let mut api = api();
    let mut conn = Connection::new();
    let mut both = NEXT.to_vec();
    both.extend(post(
        &format!("/2018-06-01/runtime/invocation/{ID}/response"),
        "",
        "42",
    ));
    for b in &both {
        conn.receive(&mut api, std::slice::from_ref(b), now());
    }
    // One answer at a time: the response waits until the event is sent.
    let out = all_output(&conn);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(out.matches("HTTP/1.1").count(), 1);
    assert!(!conn.wants_input());
    assert!(!conn.resume(&mut api, now()));
    send_all(&mut conn);
    assert!(conn.wants_input());
    assert!(conn.resume(&mut api, now()));
    let out = all_output(&conn);
    assert!(out.ends_with("\r\n\r\n{\"status\":\"OK\"}"), "{out}");
    let results: Vec<_> = api
        .take_events()
        .into_iter()
        .filter(|e| matches!(e, ApiEvent::Finished { .. }))
        .collect();
    assert_eq!(results.len(), 1);
}

#[test]
fn function_errors() {
    let cases = [
        (
            "Lambda-Runtime-Function-Error-Type: Header.Type\r\n",
            r#"{"errorType":"Body.Type","errorMessage":"boom","stackTrace":[]}"#,
            "Body.Type",
            "boom",
        ),
        (
            "Lambda-Runtime-Function-Error-Type: Header.Type\r\n",
            "not json",
            "Header.Type",
            "",
        ),
        ("", r#"{"errorMessage":"m"}"#, "Unhandled", "m"),
    ];
    for (headers, body, expected_type, expected_message) in cases {
        let mut api = api();
        let mut conn = Connection::new();
        exchange(&mut api, &mut conn, NEXT);
        let path = format!("/2018-06-01/runtime/invocation/{ID}/error");
        let answer = exchange(&mut api, &mut conn, &post(&path, headers, body));
        assert!(answer.starts_with("HTTP/1.1 202 Accepted\r\n"), "{answer}");
        let result = api.take_events().into_iter().find_map(|e| match e {
            ApiEvent::Finished { result, .. } => Some(result),
            _ => None,
        });
        assert_eq!(
            result,
            Some(GuestResult::Error {
                error_type: expected_type.into(),
                error_message: expected_message.into(),
                body: bytes::Bytes::copy_from_slice(body.as_bytes()),
                init: false,
            })
        );
    }
}

#[test]
fn init_error_only_before_delivery() {
    let mut api = api();
    let mut conn = Connection::new();
    let body = r#"{"errorType":"Runtime.OutOfMemory","errorMessage":"heap exhausted"}"#;
    let answer = exchange(
        &mut api,
        &mut conn,
        &post("/2018-06-01/runtime/init/error", "", body),
    );
    assert!(answer.starts_with("HTTP/1.1 202 Accepted\r\n"));
    assert!(matches!(
        &api.take_events()[0],
        ApiEvent::Finished { result: GuestResult::Error { error_type, init: true, .. }, .. }
            if error_type == "Runtime.OutOfMemory"
    ));

    let mut api = self::api();
    let mut conn = Connection::new();
    exchange(&mut api, &mut conn, NEXT);
    let answer = exchange(
        &mut api,
        &mut conn,
        &post("/2018-06-01/runtime/init/error", "", body),
    );
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"), "{answer}");
    assert!(answer.ends_with(r#""errorType":"InvalidStateTransition"}"#));
}

#[test]
fn unknown_paths_are_answered_and_the_invocation_goes_on() {
    let mut api = api();
    let mut conn = Connection::new();
    exchange(&mut api, &mut conn, NEXT);
    let answer = exchange(&mut api, &mut conn, b"GET /health HTTP/1.1\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
    let path = format!("/2018-06-01/runtime/invocation/{ID}/response");
    let answer = exchange(&mut api, &mut conn, &post(&path, "", "1"));
    assert!(answer.starts_with("HTTP/1.1 202 Accepted\r\n"));
    // A second result is refused.
    let answer = exchange(&mut api, &mut conn, &post(&path, "", "2"));
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"));
}

#[test]
fn a_post_for_another_request_id_ends_the_invocation() {
    let mut api = api();
    let mut conn = Connection::new();
    exchange(&mut api, &mut conn, NEXT);
    api.take_events();
    let answer = exchange(
        &mut api,
        &mut conn,
        &post("/2018-06-01/runtime/invocation/other/response", "", "1"),
    );
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Connection: close\r\n"));
    assert!(conn.should_close());
    let events = api.take_events();
    let [ApiEvent::Violated(violation)] = &events[..] else {
        panic!("{events:?}")
    };
    assert_eq!(violation.error_type, ERROR_INVALID_REQUEST);
    assert!(
        violation.message.contains("\"other\""),
        "{}",
        violation.message
    );
    assert!(violation.message.contains(ID), "{}", violation.message);
    // Ended: the right id, on another connection, changes nothing.
    let mut again = Connection::new();
    let path = format!("/2018-06-01/runtime/invocation/{ID}/response");
    assert_eq!(exchange(&mut api, &mut again, &post(&path, "", "1")), "");
    assert!(api.take_events().is_empty());
}

#[test]
fn response_before_next_is_refused() {
    let mut api = api();
    let mut conn = Connection::new();
    let path = format!("/2018-06-01/runtime/invocation/{ID}/response");
    let answer = exchange(&mut api, &mut conn, &post(&path, "", "1"));
    assert!(answer.starts_with("HTTP/1.1 403 Forbidden\r\n"));
}

#[test]
fn a_second_next_is_never_answered() {
    let mut api = api();
    let mut first = Connection::new();
    exchange(&mut api, &mut first, NEXT);
    let mut second = Connection::new();
    assert_eq!(exchange(&mut api, &mut second, NEXT), "");
    // Nothing after it on that connection is answered either.
    assert_eq!(
        exchange(&mut api, &mut second, b"GET /x HTTP/1.1\r\n\r\n"),
        ""
    );
    assert!(!second.should_close());
}

/// The one violation `api` reported.
pub(super) fn violation(api: &mut RuntimeApi) -> Violation {
    let events: Vec<_> = api
        .take_events()
        .into_iter()
        .filter_map(|e| match e {
            ApiEvent::Violated(v) => Some(v),
            _ => None,
        })
        .collect();
    match &events[..] {
        [v] => v.clone(),
        _ => panic!("expected one violation, got {events:?}"),
    }
}

#[test]
fn oversized_and_malformed_requests_close() {
    let mut api = api();
    let mut conn = Connection::new();
    exchange(&mut api, &mut conn, NEXT);
    let path = format!("/2018-06-01/runtime/invocation/{ID}/response");
    let head = format!(
        "POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        MAX_RESPONSE_BYTES + 1
    );
    let answer = exchange(&mut api, &mut conn, head.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Connection: close\r\n"));
    assert!(conn.should_close());
    assert_eq!(exchange(&mut api, &mut conn, b"xxxx"), "");
    let v = violation(&mut api);
    assert_eq!(v.error_type, ERROR_RESPONSE_TOO_LARGE);
    assert!(v.message.contains("6291457 bytes"), "{}", v.message);

    let mut api = self::api();
    let mut conn = Connection::new();
    let answer = exchange(&mut api, &mut conn, b"\x01\x02 nonsense\r\n\r\n");
    assert!(
        answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{answer}"
    );
    assert!(conn.should_close());
    assert_eq!(violation(&mut api).error_type, ERROR_INVALID_REQUEST);

    let mut api = self::api();
    let mut conn = Connection::new();
    let gzip = format!("POST {path} HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    let answer = exchange(&mut api, &mut conn, gzip.as_bytes());
    assert!(
        answer.starts_with("HTTP/1.1 501 Not Implemented\r\n"),
        "{answer}"
    );
    assert_eq!(violation(&mut api).error_type, ERROR_INVALID_REQUEST);
}

#[test]
fn a_body_at_the_limit_is_accepted_in_pieces() {
    let mut api = api();
    let mut conn = Connection::new();
    exchange(&mut api, &mut conn, NEXT);
    let body = vec![b'x'; 6 * 1024 * 1024];
    let path = format!("/2018-06-01/runtime/invocation/{ID}/response");
    let head = format!(
        "POST {path} HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.receive(&mut api, head.as_bytes(), now());
    for chunk in body.chunks(1460) {
        conn.receive(&mut api, chunk, now());
    }
    assert!(all_output(&conn).contains("202 Accepted"));
    assert!(api.take_events().iter().any(|e| matches!(
        e,
        ApiEvent::Finished { result: GuestResult::Response(b), .. } if b.len() == body.len()
    )));
}

#[test]
fn connection_close_is_honoured() {
    let mut api = api();
    let mut conn = Connection::new();
    let request = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nConnection: close\r\n\r\n";
    conn.receive(&mut api, request, now());
    assert!(all_output(&conn).contains("Connection: close\r\n"));
    assert!(!conn.should_close(), "must flush before closing");
    send_all(&mut conn);
    assert!(conn.should_close());
}

#[test]
fn trace_ids() {
    let id = format_trace_id(0x5f5e_1000, [0xab; 12], [0x01; 8]);
    assert_eq!(
        id,
        "Root=1-5f5e1000-abababababababababababab;Parent=0101010101010101;Sampled=0"
    );
}

pub(super) fn invocation() -> Invocation {
    Invocation {
        request_id: ID.into(),
        event: bytes::Bytes::from_static(br#"{"a":1}"#),
        timeout: Duration::from_secs(3),
        invoked_arn: "arn:aws:lambda:us-east-1:000000000000:function:echo:1".into(),
        trace_id: "Root=1-00000001-000000000000000000000000;Parent=0000000000000000;Sampled=0"
            .into(),
    }
}

#[test]
fn warm_next_is_held_until_the_event_is_delivered() {
    let mut api = RuntimeApi::without_event();
    let mut conn = Connection::new();
    assert_eq!(exchange(&mut api, &mut conn, NEXT), "");
    let events = api.take_events();
    assert!(matches!(
        events[..],
        [ApiEvent::MaxMemory(_), ApiEvent::Waiting { .. }]
    ));
    // Nothing to answer with yet; a post meanwhile is kept, not answered.
    assert!(!conn.resume(&mut api, now()));
    let response = post(
        &format!("/2018-06-01/runtime/invocation/{ID}/response"),
        "",
        "{}",
    );
    conn.receive(&mut api, &response[..10], now());
    assert!(conn.pending_output().is_empty());

    api.deliver(invocation());
    assert!(conn.resume(&mut api, now()));
    assert!(!conn.resume(&mut api, now()), "answered once");
    let answer = all_output(&conn);
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains(&format!("Lambda-Runtime-Aws-Request-Id: {ID}\r\n")));
    assert!(answer.ends_with("\r\n\r\n{\"a\":1}"), "{answer}");
    assert!(matches!(
        api.take_events()[..],
        [ApiEvent::Delivered { .. }]
    ));
    send_all(&mut conn);

    // The rest of the post that arrived behind the held `next`.
    let answer = exchange(&mut api, &mut conn, &response[10..]);
    assert!(answer.starts_with("HTTP/1.1 202 Accepted"), "{answer}");
    assert!(matches!(
        &api.take_events()[..],
        [ApiEvent::Finished { result: GuestResult::Response(body), .. }] if body[..] == b"{}"[..]
    ));
}

#[test]
fn a_second_delivery_changes_nothing() {
    let mut api = RuntimeApi::new(invocation());
    let mut other = invocation();
    other.request_id = "someone-else".into();
    api.deliver(other);
    let mut conn = Connection::new();
    let answer = exchange(&mut api, &mut conn, NEXT);
    assert!(answer.contains(&format!("Lambda-Runtime-Aws-Request-Id: {ID}\r\n")));
    assert!(!conn.resume(&mut api, now()));
}

#[test]
fn large_events_and_responses_are_passed_on_not_copied() {
    let event = bytes::Bytes::from(vec![b'7'; 64 * 1024]);
    let mut api = RuntimeApi::new(Invocation {
        event: event.clone(),
        ..invocation()
    });
    let mut conn = Connection::new();
    conn.receive(&mut api, NEXT, now());
    // The head goes first with the event's first 16 KiB, in one write
    // (so the head never arrives alone); then the rest of the event, from
    // the caller's own buffer.
    let first = conn.pending_output().to_vec();
    let head_len = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(first.len(), head_len + 16 * 1024);
    assert!(first[head_len..].iter().all(|&b| b == b'7'));
    conn.consume_output(first.len());
    assert_eq!(conn.pending_output().as_ptr(), event[16 * 1024..].as_ptr());
    assert_eq!(conn.pending_output().len(), event.len() - 16 * 1024);
    send_all(&mut conn);

    let body = "8".repeat(64 * 1024);
    let post = post(
        &format!("/2018-06-01/runtime/invocation/{ID}/response"),
        "",
        &body,
    );
    conn.receive(&mut api, &post, now());
    let finished = api.take_events().into_iter().find_map(|e| match e {
        ApiEvent::Finished {
            result: GuestResult::Response(body),
            ..
        } => Some(body),
        _ => None,
    });
    let response = finished.expect("the response");
    assert_eq!(response.len(), body.len());
    // Received once into the connection's buffer and handed on from there.
    let buffer = conn.input.as_ptr() as usize;
    let at = response.as_ptr() as usize;
    assert!(
        at < buffer && buffer - at <= post.len(),
        "the response was copied out of the connection's buffer"
    );
}

/// A streamed response's head for request `id`.
fn stream_head(id: &str) -> String {
    format!(
        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: 10.0.2.2:9001\r\n\
         Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
}

#[test]
fn a_streamed_response_is_handed_on_as_it_arrives_and_ends_with_the_result() {
    let mut api = api();
    let mut conn = Connection::new();
    exchange(&mut api, &mut conn, NEXT);
    api.take_events();
    let answer = exchange(&mut api, &mut conn, stream_head(ID).as_bytes());
    assert_eq!(answer, "", "nothing is answered before the stream ends");
    exchange(&mut api, &mut conn, b"5\r\nhello\r\n");
    assert_eq!(
        api.take_events(),
        [ApiEvent::ResponseChunk(bytes::Bytes::from_static(b"hello"))]
    );
    exchange(&mut api, &mut conn, b"6\r\n world\r\n3\r\n!!!");
    assert_eq!(
        api.take_events(),
        [ApiEvent::ResponseChunk(bytes::Bytes::from_static(
            b" world!!!"
        ))]
    );
    let answer = exchange(&mut api, &mut conn, b"\r\n0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let events = api.take_events();
    assert!(
        matches!(
            &events[..],
            [ApiEvent::Finished { result: GuestResult::Response(body), .. }] if body.is_empty()
        ),
        "{events:?}"
    );
}

#[test]
fn an_error_in_a_streams_trailers_is_the_functions_error() {
    use base64::Engine;
    let mut api = api();
    let mut conn = Connection::new();
    exchange(&mut api, &mut conn, NEXT);
    api.take_events();
    let body = base64::engine::general_purpose::STANDARD
        .encode(br#"{"errorType":"Stream.Failed","errorMessage":"midway"}"#);
    let request = format!(
        "{}3\r\nabc\r\n0\r\nLambda-Runtime-Function-Error-Type: Stream.Failed\r\n\
         Lambda-Runtime-Function-Error-Body: {body}\r\n\r\n",
        stream_head(ID)
    );
    exchange(&mut api, &mut conn, request.as_bytes());
    let events = api.take_events();
    assert_eq!(
        events[0],
        ApiEvent::ResponseChunk(bytes::Bytes::from_static(b"abc"))
    );
    let ApiEvent::Finished {
        result:
            GuestResult::Error {
                error_type,
                error_message,
                ..
            },
        ..
    } = &events[1]
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        (error_type.as_str(), error_message.as_str()),
        ("Stream.Failed", "midway")
    );
}

#[test]
fn a_stream_for_another_request_id_is_refused_before_its_data() {
    let mut api = api();
    let mut conn = Connection::new();
    exchange(&mut api, &mut conn, NEXT);
    api.take_events();
    let other = "8f507cfc-0000-4000-8000-000000000999";
    let answer = exchange(&mut api, &mut conn, stream_head(other).as_bytes());
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(violation(&mut api).error_type, ERROR_INVALID_REQUEST);
}
