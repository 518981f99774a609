//! Storage through the real server: deleting every function gives the data
//! directory its space back, and a full file system keeps reads and deletes
//! working while writes fail cleanly.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::limits::files_under;
use crate::support::http::try_http;
use crate::support::{image_path, Options, Server};

/// Bytes of every file under `dir`.
fn size_of(dir: &Path) -> u64 {
    files_under(dir).values().sum()
}

/// Polls until `dir` holds at most `bytes`, up to `within`; the last size.
fn shrinks_to(dir: &Path, bytes: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let size = size_of(dir);
        if size <= bytes || Instant::now() >= deadline {
            return size;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn deleting_every_function_returns_the_data_directory_to_its_empty_size() {
    let s = Server::start();
    // The collector compacts the database at start: wait for it to settle.
    let mut empty = size_of(&s.data_dir);
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(100));
        let now = size_of(&s.data_dir);
        if now == empty {
            break;
        }
        empty = now;
    }
    let packages = ["echo.zip", "hello.zip", "wordcount.zip"];
    for (i, package) in packages.iter().enumerate() {
        let name = format!("space-{i}");
        s.create(&name, &image_path(package), &["--publish"]);
        // A second version with other code, and an alias.
        let other = image_path(packages[(i + 1) % packages.len()]);
        s.aws(&[
            "update-function-code",
            "--function-name",
            &name,
            "--zip-file",
            &format!("fileb://{}", other.display()),
            "--publish",
        ])
        .ok();
        s.aws(&[
            "create-alias",
            "--function-name",
            &name,
            "--name",
            "live",
            "--function-version",
            "1",
        ])
        .ok();
        s.invoke(&name, &["--payload", "{}"]);
    }
    let full = size_of(&s.data_dir);
    assert!(
        full > empty + 50_000,
        "{empty} bytes empty, {full} with functions"
    );
    for i in 0..packages.len() {
        s.aws(&["delete-function", "--function-name", &format!("space-{i}")])
            .ok();
    }
    let slack = 8 * 1024;
    let after = shrinks_to(&s.data_dir, empty + slack, Duration::from_secs(10));
    eprintln!(
        "data directory: {empty} bytes empty, {full} with functions, {after} after deleting them"
    );
    assert!(
        after <= empty + slack,
        "{empty} bytes empty, {full} with functions, {after} after deleting them: {:#?}",
        files_under(&s.data_dir)
    );
    s.assert_no_qemu();
}

/// A tmpfs mounted for the test, unmounted when dropped (even when the
/// test fails).
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::Builder::new()
            .prefix("mayfly-full-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0755")])
            .arg("tmpfs")
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount a tmpfs (the test needs root)");
        Tmpfs { path, _dir: dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes zeros into `path` until the file system is full.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 64 * 1024];
    loop {
        if let Err(e) = file.write_all(&block) {
            assert_eq!(e.raw_os_error(), Some(28), "{e}");
            break;
        }
    }
    // The last partial block may have left room for a few bytes.
    while file.write_all(&[0u8; 512]).is_ok() {}
}

#[test]
fn on_a_full_disk_reads_and_deletes_work_and_writes_fail_cleanly() {
    let fs = Tmpfs::mount("16m");
    let s = Server::start_with(Options {
        data_dir: Some(fs.path.clone()),
        ..Options::default()
    });
    // The tmpfs root was 0755: the server made it private.
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&fs.path).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700, "mode {mode:o}");
    s.create("full-echo", &image_path("echo.zip"), &[]);
    s.create("full-keep", &image_path("echo.zip"), &[]);
    s.invoke("full-echo", &["--payload", r#"{"before":1}"#]);
    fill(&fs.path.join("filler"));

    // Reads work.
    let got = s
        .aws(&["get-function", "--function-name", "full-echo"])
        .ok();
    assert_eq!(got["Configuration"]["FunctionName"], "full-echo", "{got}");
    s.aws(&["list-functions"]).ok();
    // A write fails, at once and saying why; the server stays up.
    let started = Instant::now();
    let hello = image_path("hello.zip");
    let refused = s.create_raw("full-new", &hello, &[]);
    let message = refused.fails_with_any(&["ServiceException", "ServiceError"]);
    assert!(message.contains("disk is full"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // Deletes work.
    s.aws(&["delete-function", "--function-name", "full-echo"])
        .ok();
    s.aws(&["get-function", "--function-name", "full-echo"])
        .fails_with("ResourceNotFoundException");
    let health = try_http(s.addr, "GET", "/healthz", &[], b"").expect("still serving");
    assert_eq!(health.status, 200);
    // Once there is room again, writes work again.
    std::fs::remove_file(fs.path.join("filler")).unwrap();
    s.create("full-new", &hello, &[]);
    let log = s.log();
    assert!(!log.contains("panicked"), "{log}");
    for line in log.lines().filter(|l| l.contains("disk")) {
        eprintln!("server: {line}");
    }
    drop(s);
    drop(fs);
}
