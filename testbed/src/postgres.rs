//! A PostgreSQL server (Debian's `postgresql`) with `wal_level = logical`.
//!
//! PostgreSQL is Debian's (`cargo xtask bootstrap` installs it), found as
//! xtask finds it: `$MAYFLY_PG_BIN`, or the newest
//! `/usr/lib/postgresql/<version>/bin`. The server refuses to run as
//! root, and the tests run as root: then initdb and postgres run as the
//! `postgres` user that Debian's package creates (`nobody` where there is
//! none), through `runuser`, in a temporary directory chowned to it. A
//! fixed system user rather than one of the jail's uids: the jail leases
//! those to QEMU processes, and a database that outlived a test must not
//! share one with a VM.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::free_port;

/// The role clients log in as (with [`PASSWORD`]), a superuser.
pub const USER: &str = "mayfly";
/// The password of [`USER`].
pub const PASSWORD: &str = "notes-secret";

/// PostgreSQL's programs: `$MAYFLY_PG_BIN`, or the newest of Debian's.
pub fn pg_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("MAYFLY_PG_BIN") {
        return dir.into();
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path())))
        .max()
        .map(|(_, dir)| dir.join("bin"))
        .expect("PostgreSQL is missing: cargo xtask bootstrap installs it (Debian's postgresql)")
}

/// `id ARGS...` as a number.
fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// A PostgreSQL server of its own on 127.0.0.1, in a temporary directory;
/// stopped (and the directory removed) when dropped, whatever happened.
pub struct Postgres {
    bin: PathBuf,
    /// The unprivileged user it runs as, when the test runs as root.
    user: Option<String>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Postgres {
    /// initdb with a password for [`USER`], then `pg_ctl start -w`.
    pub fn start() -> Postgres {
        let bin = pg_bin();
        let dir = tempfile::Builder::new()
            .prefix("mayfly-pg-")
            .tempdir()
            .unwrap();
        let user = (id(&["-u"]) == Some(0)).then(|| {
            ["postgres", "nobody"]
                .into_iter()
                .find(|name| id(&["-u", name]).is_some())
                .expect("no unprivileged user to run PostgreSQL as")
                .to_string()
        });
        let mut pg = Postgres {
            bin,
            user,
            port: 0,
            dir,
        };
        pg.chown(pg.dir.path());
        std::fs::write(pg.dir.path().join("pwfile"), PASSWORD).unwrap();
        let data = pg.data();
        let out = pg.run("initdb", |c| {
            c.args(["--auth", "scram-sha-256", "--username", USER, "--pwfile"])
                .arg(pg.dir.path().join("pwfile"))
                .arg("--pgdata")
                .arg(&data);
        });
        assert!(out.status.success(), "initdb: {}", text(&out));
        // A port picked by binding port 0 can be taken before the server
        // binds it: try again with another.
        for attempt in 1..=3 {
            pg.port = free_port();
            let conf = format!(
                "listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
                 wal_level = logical\n",
                pg.port,
                pg.dir.path().display()
            );
            // Appended: the last setting of a name counts.
            std::fs::OpenOptions::new()
                .append(true)
                .open(data.join("postgresql.conf"))
                .and_then(|mut f| std::io::Write::write_all(&mut f, conf.as_bytes()))
                .unwrap();
            let out = pg.run("pg_ctl", |c| {
                c.args(["start", "-w", "-t", "60", "-D"])
                    .arg(&data)
                    .arg("-l")
                    .arg(pg.dir.path().join("log"));
            });
            if out.status.success() {
                return pg;
            }
            let log = std::fs::read_to_string(pg.dir.path().join("log")).unwrap_or_default();
            assert!(
                attempt < 3 && log.contains("in use"),
                "pg_ctl start: {}\n{log}",
                text(&out)
            );
        }
        unreachable!()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Gives `path` to the user PostgreSQL runs as.
    fn chown(&self, path: &Path) {
        if let Some(user) = &self.user {
            let (uid, gid) = (id(&["-u", user]).unwrap(), id(&["-g", user]).unwrap());
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }

    /// One of PostgreSQL's server programs, as the user it runs as.
    fn run(&self, program: &str, args: impl FnOnce(&mut Command)) -> Output {
        let mut command = match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(self.bin.join(program));
                c
            }
            None => Command::new(self.bin.join(program)),
        };
        args(&mut command);
        command
            .current_dir(self.dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
    }

    /// `psql -tAc SQL` over TCP with the password: its stdout, trimmed.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", USER, "-d", "postgres", "-v", "ON_ERROR_STOP=1"])
            .args(["-tAc", sql])
            .env("PGPASSWORD", PASSWORD)
            .output()
            .expect("run psql");
        assert!(out.status.success(), "psql -c {sql:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data();
        let _ = self.run("pg_ctl", |c| {
            c.args(["stop", "-w", "-m", "immediate", "-D"]).arg(&data);
        });
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
