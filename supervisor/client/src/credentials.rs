//! The host's credentials: the one access key pair that `mayfly serve`
//! accepts and that the `mayfly` client commands sign with.
//!
//! They come from the environment (`MAYFLY_ACCESS_KEY_ID` and
//! `MAYFLY_SECRET_ACCESS_KEY`, both or neither) or from the file
//! `<data-dir>/credentials`, which the server generates at its first start.
//! The file is in the AWS shared-credentials format, profile `mayfly`, so
//! that the AWS CLI and boto3 can use it directly:
//!
//! ```text
//! AWS_SHARED_CREDENTIALS_FILE=.mayfly/credentials aws --profile mayfly --region us-east-1 \
//!     --endpoint-url http://127.0.0.1:9000 lambda list-functions
//! ```

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use mayfly_sigv4::{generate_credentials, Credentials, RandomError};
use thiserror::Error;

/// The file name of the credentials inside the data directory.
pub const FILE_NAME: &str = "credentials";
/// The profile (INI section) of the credentials file.
pub const PROFILE: &str = "mayfly";
/// The environment variable holding the access key id.
pub const ENV_ACCESS_KEY_ID: &str = "MAYFLY_ACCESS_KEY_ID";
/// The environment variable holding the secret access key.
pub const ENV_SECRET_ACCESS_KEY: &str = "MAYFLY_SECRET_ACCESS_KEY";

const KEY_ID_FIELD: &str = "aws_access_key_id";
const SECRET_FIELD: &str = "aws_secret_access_key";

/// Where the credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `MAYFLY_ACCESS_KEY_ID` and `MAYFLY_SECRET_ACCESS_KEY`.
    Environment,
    /// An existing credentials file.
    File(PathBuf),
    /// Generated now and written to this file: the server prints them once.
    Generated(PathBuf),
}

/// Why the credentials could not be had.
#[derive(Debug, Error)]
pub enum CredentialsError {
    /// One of the two environment variables is set without the other.
    #[error("{set} is set but {missing} is not: set both, or neither to use the credentials file")]
    HalfSetEnvironment {
        /// The variable that is set.
        set: &'static str,
        /// The variable that is missing.
        missing: &'static str,
    },
    /// A key from the environment or the file cannot be used for signing.
    #[error("the {what} from {source_name} is not usable: {reason}")]
    InvalidKey {
        /// `access key id` or `secret access key`.
        what: &'static str,
        /// Where it came from (a variable name or a path).
        source_name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The client found neither the environment variables nor the file.
    #[error(
        "no credentials: {} does not exist and {ENV_ACCESS_KEY_ID} / {ENV_SECRET_ACCESS_KEY} are not set; \
         start `mayfly serve --data-dir {}` once to generate them, or set both variables to the host's key pair",
        path.display(),
        path.parent().map(|p| p.display().to_string()).unwrap_or_default()
    )]
    NotFound {
        /// The credentials file that was looked for.
        path: PathBuf,
    },
    /// The file exists but cannot be read.
    #[error("cannot read the credentials file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The file is not an AWS credentials file with a `[mayfly]` profile.
    #[error("the credentials file {} is malformed: {reason}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line number where there is one.
        reason: String,
    },
    /// The operating system's RNG failed while generating a key pair.
    #[error("cannot generate credentials: {0}")]
    Generate(#[from] RandomError),
    /// Writing the new credentials file failed.
    #[error("cannot write the credentials file {}: {source}", path.display())]
    Write {
        /// The file (or the directory being created).
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// The server's rule: the environment if both variables are set; else the
/// file `<data_dir>/credentials` if it exists; else a new key pair, written
/// to that file (mode 0600, atomically) and returned with
/// [`Origin::Generated`].
pub fn load_or_create(data_dir: &Path) -> Result<(Credentials, Origin), CredentialsError> {
    load_or_create_with(data_dir, &env_var)
}

/// The client's rule: the environment if both variables are set, else the
/// file `<data_dir>/credentials`, else [`CredentialsError::NotFound`], whose
/// message says how to get them.
pub fn load_for_client(data_dir: &Path) -> Result<Credentials, CredentialsError> {
    load_for_client_with(data_dir, &env_var)
}

/// The path of the credentials file in `data_dir`.
pub fn file_path(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// An environment variable, treating an empty value as unset (as shells
/// leave `VAR=` behind more often than anyone means an empty key).
fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

fn load_or_create_with(
    data_dir: &Path,
    env: EnvLookup<'_>,
) -> Result<(Credentials, Origin), CredentialsError> {
    if let Some(creds) = from_env(env)? {
        return Ok((creds, Origin::Environment));
    }
    let path = file_path(data_dir);
    if let Some(creds) = read_file(&path)? {
        return Ok((creds, Origin::File(path)));
    }
    let creds = generate_credentials()?;
    match write_new(data_dir, &path, &creds)? {
        true => Ok((creds, Origin::Generated(path))),
        // Another process created the file first: use theirs, so that both
        // agree on one key pair.
        false => match read_file(&path)? {
            Some(theirs) => Ok((theirs, Origin::File(path))),
            None => Err(CredentialsError::NotFound { path }),
        },
    }
}

fn load_for_client_with(
    data_dir: &Path,
    env: EnvLookup<'_>,
) -> Result<Credentials, CredentialsError> {
    if let Some(creds) = from_env(env)? {
        return Ok(creds);
    }
    let path = file_path(data_dir);
    read_file(&path)?.ok_or(CredentialsError::NotFound { path })
}

fn from_env(env: EnvLookup<'_>) -> Result<Option<Credentials>, CredentialsError> {
    match (env(ENV_ACCESS_KEY_ID), env(ENV_SECRET_ACCESS_KEY)) {
        (Some(id), Some(secret)) => {
            check_key(&id, "access key id", ENV_ACCESS_KEY_ID)?;
            check_key(&secret, "secret access key", ENV_SECRET_ACCESS_KEY)?;
            Ok(Some(Credentials::new(id, secret)))
        }
        (None, None) => Ok(None),
        (Some(_), None) => Err(CredentialsError::HalfSetEnvironment {
            set: ENV_ACCESS_KEY_ID,
            missing: ENV_SECRET_ACCESS_KEY,
        }),
        (None, Some(_)) => Err(CredentialsError::HalfSetEnvironment {
            set: ENV_SECRET_ACCESS_KEY,
            missing: ENV_ACCESS_KEY_ID,
        }),
    }
}

/// Refuses keys that SigV4 cannot carry: the id goes into the
/// `Credential=ID/scope` field, so it may hold neither `/` nor whitespace.
fn check_key(value: &str, what: &'static str, source_name: &str) -> Result<(), CredentialsError> {
    let reason = if value.is_empty() {
        Some("it is empty")
    } else if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("it contains whitespace or control characters")
    } else if what == "access key id" && value.contains('/') {
        Some("an access key id cannot contain '/'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(CredentialsError::InvalidKey {
            what,
            source_name: source_name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Reads the file, or `None` if it does not exist.
fn read_file(path: &Path) -> Result<Option<Credentials>, CredentialsError> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialsError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                "the credentials file is readable by others; chmod 600 it"
            );
        }
    }
    let creds = parse(&text).map_err(|reason| CredentialsError::Malformed {
        path: path.to_path_buf(),
        reason,
    })?;
    let source_name = path.display().to_string();
    check_key(&creds.access_key_id, "access key id", &source_name)?;
    check_key(&creds.secret_access_key, "secret access key", &source_name)?;
    Ok(Some(creds))
}

/// Parses the `[mayfly]` profile of an AWS shared-credentials file, as
/// botocore reads it: `[section]` headers, `key = value` lines, `#` and `;`
/// comment lines; other profiles are ignored.
fn parse(text: &str) -> Result<Credentials, String> {
    let mut section: Option<&str> = None;
    let mut seen_profile = false;
    let (mut id, mut secret) = (None, None);
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let name = rest
                .strip_suffix(']')
                .ok_or_else(|| format!("line {}: unterminated section header", n + 1))?
                .trim();
            section = Some(name);
            seen_profile |= name == PROFILE;
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected `key = value`", n + 1))?;
        if section.is_none() {
            return Err(format!("line {}: a setting outside any [profile]", n + 1));
        }
        if section != Some(PROFILE) {
            continue;
        }
        match key.trim() {
            KEY_ID_FIELD => id = Some(value.trim().to_owned()),
            SECRET_FIELD => secret = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    if !seen_profile {
        return Err(format!("it has no [{PROFILE}] profile"));
    }
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(Credentials::new(id, secret)),
        (None, _) => Err(format!("the [{PROFILE}] profile has no {KEY_ID_FIELD}")),
        (_, None) => Err(format!("the [{PROFILE}] profile has no {SECRET_FIELD}")),
    }
}

/// The file's content for `creds`.
fn render(creds: &Credentials) -> String {
    format!(
        "# The Mayfly host's credentials, generated by `mayfly serve`. Keep them secret.\n\
         [{PROFILE}]\n\
         {KEY_ID_FIELD} = {}\n\
         {SECRET_FIELD} = {}\n",
        creds.access_key_id, creds.secret_access_key
    )
}

/// Writes `creds` to `path` unless it exists. Returns `false` if another
/// process created it first.
///
/// The file is created 0600 from the start (never briefly readable by
/// others), written and fsynced under a temporary name, then hard-linked
/// into place: unlike `rename`, `link` refuses to replace a file another
/// server wrote meanwhile, and a crash leaves either no file or a complete
/// one.
fn write_new(data_dir: &Path, path: &Path, creds: &Credentials) -> Result<bool, CredentialsError> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CredentialsError::Write { path, source }
    };
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .map_err(write_err(data_dir))?;
    let temp = data_dir.join(format!(
        ".{FILE_NAME}.tmp-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| -> io::Result<bool> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(render(creds).as_bytes())?;
        file.sync_all()?;
        drop(file);
        let created = match fs::hard_link(&temp, path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        // The directory entry must reach the disk too, or a crash could
        // lose a key pair the server has already printed.
        File::open(data_dir)?.sync_all()?;
        Ok(created)
    })();
    let _ = fs::remove_file(&temp);
    result.map_err(write_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn generates_then_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let none = env_of(&[]);
        let (made, origin) = load_or_create_with(&data, &none).unwrap();
        assert_eq!(origin, Origin::Generated(data.join(FILE_NAME)));
        assert!(made.access_key_id.starts_with("AKIA"));
        let (again, origin) = load_or_create_with(&data, &none).unwrap();
        assert_eq!(origin, Origin::File(data.join(FILE_NAME)));
        assert_eq!(again, made);
        assert_eq!(load_for_client_with(&data, &none).unwrap(), made);
        // Only the file is left behind, no temporary.
        let names: Vec<_> = fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME]);
    }

    #[test]
    fn file_is_owner_only_and_aws_shaped() {
        let dir = tempfile::tempdir().unwrap();
        let (creds, _) = load_or_create_with(dir.path(), &env_of(&[])).unwrap();
        let path = file_path(dir.path());
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!(
            "[mayfly]\naws_access_key_id = {}\n",
            creds.access_key_id
        )));
        assert!(text.contains(&format!(
            "aws_secret_access_key = {}\n",
            creds.secret_access_key
        )));
    }

    #[test]
    fn environment_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_of(&[
            (ENV_ACCESS_KEY_ID, "AKIDENV"),
            (ENV_SECRET_ACCESS_KEY, "sekrit"),
        ]);
        let (creds, origin) = load_or_create_with(dir.path(), &env).unwrap();
        assert_eq!(
            (creds.clone(), origin),
            (Credentials::new("AKIDENV", "sekrit"), Origin::Environment)
        );
        // Nothing is written when the environment supplies the keys.
        assert!(!file_path(dir.path()).exists());
        // Even over an existing file.
        load_or_create_with(dir.path(), &env_of(&[])).unwrap();
        assert_eq!(load_for_client_with(dir.path(), &env).unwrap(), creds);
    }

    #[test]
    fn half_set_environment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_of(&[(ENV_ACCESS_KEY_ID, "AKIDENV")]);
        let err = load_or_create_with(dir.path(), &env).unwrap_err();
        assert!(matches!(
            err,
            CredentialsError::HalfSetEnvironment {
                set: ENV_ACCESS_KEY_ID,
                ..
            }
        ));
        let env = env_of(&[(ENV_SECRET_ACCESS_KEY, "s")]);
        let err = load_for_client_with(dir.path(), &env).unwrap_err();
        assert!(
            err.to_string()
                .contains("MAYFLY_SECRET_ACCESS_KEY is set but MAYFLY_ACCESS_KEY_ID is not"),
            "{err}"
        );
        let env = env_of(&[(ENV_ACCESS_KEY_ID, "A/B"), (ENV_SECRET_ACCESS_KEY, "s")]);
        assert!(matches!(
            load_for_client_with(dir.path(), &env),
            Err(CredentialsError::InvalidKey { .. })
        ));
    }

    #[test]
    fn client_without_credentials_says_how_to_get_them() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_for_client_with(dir.path(), &env_of(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("mayfly serve"), "{text}");
        assert!(text.contains(ENV_ACCESS_KEY_ID), "{text}");
        // The client never creates anything.
        assert!(!file_path(dir.path()).exists());
    }

    #[test]
    fn malformed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path());
        for (content, expected) in [
            ("", "no [mayfly] profile"),
            (
                "[default]\naws_access_key_id = A\naws_secret_access_key = s\n",
                "no [mayfly] profile",
            ),
            (
                "[mayfly]\naws_access_key_id = A\n",
                "no aws_secret_access_key",
            ),
            (
                "[mayfly]\naws_secret_access_key = s\n",
                "no aws_access_key_id",
            ),
            ("[mayfly\n", "line 1: unterminated"),
            ("[mayfly]\njunk\n", "line 2: expected `key = value`"),
            ("aws_access_key_id = A\n", "outside any [profile]"),
        ] {
            fs::write(&path, content).unwrap();
            let err = load_for_client_with(dir.path(), &env_of(&[])).unwrap_err();
            assert!(
                matches!(err, CredentialsError::Malformed { .. }),
                "{content:?}: {err}"
            );
            assert!(err.to_string().contains(expected), "{content:?}: {err}");
            assert!(load_or_create_with(dir.path(), &env_of(&[])).is_err());
        }
        fs::write(
            &path,
            "[mayfly]\naws_access_key_id =\naws_secret_access_key = s\n",
        )
        .unwrap();
        assert!(matches!(
            load_for_client_with(dir.path(), &env_of(&[])),
            Err(CredentialsError::InvalidKey {
                reason: "it is empty",
                ..
            })
        ));
    }

    #[test]
    fn reads_what_the_aws_cli_writes() {
        let text = "; written by hand\n[default]\naws_access_key_id=X\n\n[mayfly]\n  aws_access_key_id=AKID \n\
                    aws_secret_access_key =  a/b+c \nregion = us-east-1\n[other]\naws_access_key_id = Y\n";
        assert_eq!(parse(text).unwrap(), Credentials::new("AKID", "a/b+c"));
        let creds = Credentials::new("AKIA1", "s/+");
        assert_eq!(parse(&render(&creds)).unwrap(), creds);
    }

    #[test]
    fn a_concurrent_writer_wins_and_both_agree() {
        let dir = tempfile::tempdir().unwrap();
        let path = file_path(dir.path());
        let first = Credentials::new("AKIAFIRST", "one");
        assert!(write_new(dir.path(), &path, &first).unwrap());
        assert!(!write_new(dir.path(), &path, &Credentials::new("AKIASECOND", "two")).unwrap());
        assert_eq!(read_file(&path).unwrap(), Some(first));
    }
}
