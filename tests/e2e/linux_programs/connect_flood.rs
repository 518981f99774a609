//! `connect_flood ADDRESS PORT N`: opens N TCP connections at once and
//! keeps them, for `mayfly exec --egress`: prints how many opened and how
//! many were refused, then closes them all.
use std::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (address, port, n) = (&args[1], &args[2], args[3].parse::<usize>().unwrap());
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..n {
        match TcpStream::connect(format!("{address}:{port}")) {
            Ok(stream) => open.push(stream),
            Err(_) => refused += 1,
        }
    }
    println!("opened {} refused {refused}", open.len());
}
