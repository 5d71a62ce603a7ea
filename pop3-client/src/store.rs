//! Where fetched messages go. [`MaildirSink`] writes each message as one
//! file under `new/` by way of `tmp/`, synced before it becomes visible, so
//! a crash never leaves a partial message where a mail reader looks.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use pop3_proto::MsgNum;

use crate::ops::MessageSink;

/// Delivers messages into a Maildir (`tmp/`, `new/`, `cur/`).
#[derive(Debug)]
pub struct MaildirSink {
    dir: PathBuf,
    current: Option<(BufWriter<File>, PathBuf, String)>,
    delivered: Vec<PathBuf>,
    counter: u64,
    host: String,
}

impl MaildirSink {
    /// Opens (creating if needed) the Maildir at `dir`.
    pub fn create(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let host = fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().replace(['/', ':'], "_"))
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_owned());
        Ok(Self {
            dir,
            current: None,
            delivered: Vec::new(),
            counter: 0,
            host,
        })
    }

    /// The files delivered so far, in `new/`.
    pub fn delivered(&self) -> &[PathBuf] {
        &self.delivered
    }

    /// Removes the partial message being written, if any (after an error).
    pub fn discard_partial(&mut self) {
        if let Some((_, tmp, _)) = self.current.take() {
            let _ = fs::remove_file(tmp);
        }
    }

    fn unique_name(&mut self) -> String {
        self.counter += 1;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{}.M{}P{}Q{}.{}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            self.counter,
            self.host
        )
    }
}

impl MessageSink for MaildirSink {
    fn begin(&mut self, _: usize, _: MsgNum) -> io::Result<()> {
        self.discard_partial();
        let name = self.unique_name();
        let tmp = self.dir.join("tmp").join(&name);
        let file = File::options().write(true).create_new(true).open(&tmp)?;
        self.current = Some((BufWriter::with_capacity(64 * 1024, file), tmp, name));
        Ok(())
    }

    fn write(&mut self, _: usize, chunk: &[u8]) -> io::Result<()> {
        match self.current.as_mut() {
            Some((file, _, _)) => file.write_all(chunk),
            None => Err(io::Error::other("message data before its start")),
        }
    }

    fn end(&mut self, _: usize, _: u64) -> io::Result<()> {
        let Some((file, tmp, name)) = self.current.take() else {
            return Ok(());
        };
        let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        let target = self.dir.join("new").join(name);
        fs::rename(&tmp, &target)?;
        // Make the rename itself durable.
        if let Ok(dir) = File::open(self.dir.join("new")) {
            let _ = dir.sync_all();
        }
        self.delivered.push(target);
        Ok(())
    }
}

impl Drop for MaildirSink {
    fn drop(&mut self) {
        self.discard_partial();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_through_tmp_into_new() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = MaildirSink::create(dir.path()).unwrap();
        let one = MsgNum::new(1).unwrap();
        sink.begin(0, one).unwrap();
        sink.write(0, b"Subject: a\r\n\r\nbody\r\n").unwrap();
        assert_eq!(fs::read_dir(dir.path().join("new")).unwrap().count(), 0);
        sink.end(0, 21).unwrap();
        let delivered = sink.delivered().to_vec();
        assert_eq!(delivered.len(), 1);
        assert_eq!(
            fs::read(&delivered[0]).unwrap(),
            b"Subject: a\r\n\r\nbody\r\n"
        );
        sink.begin(1, one).unwrap();
        sink.write(1, b"partial").unwrap();
        drop(sink);
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "partial removed"
        );
    }
}
