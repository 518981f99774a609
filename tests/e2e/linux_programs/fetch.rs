//! `fetch ADDRESS PORT PATH`: an HTTP/1.0 GET with std's TcpStream, for
//! `mayfly exec --egress`: prints the response's body, or why it failed
//! (and exits 1).
use std::io::{Read, Write};
use std::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (address, port, path) = (&args[1], &args[2], &args[3]);
    let mut stream = match TcpStream::connect(format!("{address}:{port}")) {
        Ok(stream) => stream,
        Err(e) => {
            println!("connect: {e}");
            std::process::exit(1);
        }
    };
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    println!("status: {}", text.lines().next().unwrap_or(""));
    if body.len() < 4096 {
        println!("body: {body}");
    }
    println!("bytes: {}", response.len());
}
