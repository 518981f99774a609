//! UDP egress and the guest's DNS over UDP, with `mayfly exec --egress`:
//! musl's resolver and Go's (both UDP only, unless a reply is truncated)
//! resolve through the host's DNS; a C and a Go program exchange
//! datagrams with a UDP server the test starts on the host's 127.0.0.1
//! when a rule names its port, and get nothing (and a line in the log)
//! when none does; a guest opening hundreds of flows gets its cap.

use std::net::UdpSocket;
use std::process::Output;
use std::time::Duration;

use crate::linux_examples::example;
use crate::linux_signals::go_program;
use crate::support::command::mayfly;

/// A UDP server on 127.0.0.1 answering each datagram with it in upper
/// case, in a thread that ends after a minute without one; its port.
fn echo_server() -> u16 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(&buf[..n].to_ascii_uppercase(), from);
        }
    });
    port
}

/// `mayfly exec [--egress RULE]... PROGRAM -- ARGS`: its exit code,
/// stdout and stderr.
fn exec(
    rules: &[String],
    program: &std::path::Path,
    args: &[&str],
) -> (Option<i32>, String, String) {
    let mut command = mayfly();
    command.arg("exec");
    for rule in rules {
        command.args(["--egress", rule]);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command
        .arg(program)
        .arg("--")
        .args(args)
        .output()
        .expect("run mayfly exec");
    (
        status.code(),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

#[test]
fn musls_resolver_asks_the_hosts_dns_over_udp_under_the_policy() {
    let probe = example("c-probe");
    // res_query never reads /etc/hosts: the host's name from the DNS.
    let (code, stdout, stderr) = exec(&[], &probe, &["dns", "host.mayfly.internal"]);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("dns host.mayfly.internal: rcode 0 answers 1 last 10.0.2.2"),
        "{stdout}\n{stderr}"
    );
    // A name no rule names: NXDOMAIN (h_errno HOST_NOT_FOUND, 1); a DNS
    // that did not answer would be TRY_AGAIN (2).
    let (code, stdout, _) = exec(&[], &probe, &["dns", "db.example.com"]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains("dns db.example.com: no answer (h_errno 1)"),
        "{stdout}"
    );
}

#[test]
fn a_c_program_exchanges_datagrams_with_a_loopback_server_only_with_a_rule() {
    let port = echo_server();
    let probe = example("c-probe");
    let args = ["udp", "host.mayfly.internal", &port.to_string(), "hello"];
    let rule = format!("host.mayfly.internal:{port}");
    let (code, stdout, stderr) = exec(&[rule], &probe, &args);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("resolved host.mayfly.internal to 10.0.2.2"),
        "{stdout}"
    );
    assert!(stdout.contains("udp reply: HELLO"), "{stdout}\n{stderr}");
    // Without the rule, or with another port: nothing comes back, and the
    // log says why.
    let other = format!("host.mayfly.internal:{}", port.wrapping_add(1).max(1));
    for rules in [vec![], vec![other]] {
        let (code, stdout, stderr) = exec(&rules, &probe, &args);
        assert_eq!(code, Some(0), "{stdout}\n{stderr}");
        assert!(stdout.contains("udp: no reply"), "{stdout}");
        assert!(
            stderr.contains(&format!(
                "mayfly: egress to 10.0.2.2:{port} (UDP) refused by policy"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn a_go_program_uses_gos_resolver_and_udp_sockets_through_the_host() {
    let port = echo_server();
    let program = go_program("go_udp");
    let port_text = port.to_string();
    let args = ["host.mayfly.internal", &port_text, "hi", "db.example.com"];
    let (code, stdout, stderr) = exec(&[format!("host.mayfly.internal:{port}")], &program, &args);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("udp reply: HI"), "{stdout}\n{stderr}");
    // Go's own resolver asked the host's DNS over UDP and got NXDOMAIN
    // ("no such host"; an unanswered one would time out).
    assert!(
        stdout.contains("lookup db.example.com on 10.0.2.2:53: no such host"),
        "{stdout}"
    );
    let (_, stdout, stderr) = exec(&[], &program, &args);
    assert!(stdout.contains("i/o timeout"), "{stdout}");
    assert!(stderr.contains("(UDP) refused by policy"), "{stderr}");
}

#[test]
fn a_guest_opening_hundreds_of_udp_flows_gets_its_cap_and_the_host_stays_healthy() {
    let port = echo_server();
    let probe = example("c-probe");
    let rule = format!("host.mayfly.internal:{port}");
    let (code, stdout, stderr) = exec(
        std::slice::from_ref(&rule),
        &probe,
        &["udpflood", "10.0.2.2", &port.to_string(), "300"],
    );
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    // The first 32 flows are relayed and answered; the rest are refused,
    // with at most 64 lines in the log for them.
    assert!(stdout.contains("replies 32"), "{stdout}");
    let refusals = stderr
        .lines()
        .filter(|l| l.contains("the VM has 32 UDP flows open, its limit"))
        .count();
    assert_eq!(refusals, 64, "{stderr}");
    assert!(stderr.contains("further egress refusals are not logged"));
    // And the host still serves: a fresh VM gets its answer.
    let (code, stdout, _) = exec(
        &[rule],
        &probe,
        &["udp", "host.mayfly.internal", &port.to_string(), "still"],
    );
    assert_eq!(code, Some(0));
    assert!(stdout.contains("udp reply: STILL"), "{stdout}");
}
