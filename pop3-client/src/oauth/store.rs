//! Where a rotated refresh token is kept: the application's database
//! behind [`TokenStore`], or [`FileTokenStore`], a file written 0600 and
//! replaced atomically.

use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

use crate::config::Secret;
use crate::mailbox::store::{private, sync_dir};

/// Keeps an account's refresh token durably.
pub trait TokenStore: Send + Sync {
    /// Records `token` as `account`'s refresh token, durably, before it
    /// returns: the caller uses the new access token only then.
    fn save(&self, account: &str, token: &Secret) -> io::Result<()>;
}

/// A refresh token in a file of its own (`fetch --oauth2-refresh-token-file`):
/// written to a temporary file 0600 beside it, synced, renamed over it, and
/// the folder synced, so that a crash leaves the old token or the new one,
/// whole.
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    /// The store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The refresh token the file holds (trimmed).
    pub fn load(&self) -> io::Result<Secret> {
        let text = fs::read_to_string(&self.path)?;
        Ok(Secret::new(text.trim()))
    }
}

impl TokenStore for FileTokenStore {
    fn save(&self, _: &str, token: &Secret) -> io::Result<()> {
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        {
            let mut file = private(
                fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true),
            )
            .open(&tmp)?;
            file.write_all(token.expose().as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
        }
        fs::rename(&tmp, &self.path)?;
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
            _ => sync_dir(std::path::Path::new(".")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn the_file_is_replaced_whole_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("refresh");
        fs::write(&path, "old\n").unwrap();
        let store = FileTokenStore::new(&path);
        assert_eq!(store.load().unwrap().expose(), "old");
        store.save("a", &Secret::new("new")).unwrap();
        assert_eq!(store.load().unwrap().expose(), "new");
        assert!(!dir.path().join("refresh.new").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
