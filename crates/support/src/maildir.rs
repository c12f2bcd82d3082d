//! The Maildir intake: each message a mail transfer agent delivers to `new/` (written in
//! `tmp/`, then renamed, as Maildir requires) goes through the desk's mail intake, the
//! code path of the `SubmitMail` call, and is moved to `cur/` once its outcome is stored.
//! A crash between the two leaves the message in `new/`; offered again, it is recognised
//! (by its Message-ID, or by its digest when kept aside), so nothing is lost or doubled.

use std::io;
use std::path::{Path, PathBuf};

use tokio::io::AsyncReadExt;

use crate::SupportError;
use crate::desk::{Desk, MailOutcome};
use crate::domain::mail::MAX_MAIL_BYTES;

/// A Maildir folder: `new/`, `cur/` and `tmp/` under one root.
#[derive(Clone, Debug)]
pub struct Maildir {
    new: PathBuf,
    cur: PathBuf,
}

impl Maildir {
    /// Opens the folder at `root`, creating its three subfolders if missing.
    pub fn open(root: &Path) -> Result<Self, SupportError> {
        let fail = |e: io::Error| {
            SupportError::Config(format!("support.mail_dir: {}: {e}", root.display()))
        };
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).map_err(fail)?;
        }
        Ok(Maildir {
            new: root.join("new"),
            cur: root.join("cur"),
        })
    }

    /// Messages waiting in `new/`, the oldest first.
    async fn waiting(&self) -> io::Result<Vec<PathBuf>> {
        let mut entries = tokio::fs::read_dir(&self.new).await?;
        let mut found = Vec::new();
        while let Some(entry) = entries.next_entry().await? {
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            let Ok(meta) = entry.metadata().await else {
                continue; // moved away meanwhile
            };
            if !hidden && meta.is_file() {
                found.push((meta.modified().ok(), entry.path()));
            }
        }
        found.sort();
        Ok(found.into_iter().map(|(_, path)| path).collect())
    }

    /// Where a message of `new/` goes once handled: `cur/`, flagged seen.
    fn seen(&self, path: &Path) -> Option<PathBuf> {
        let name = path.file_name()?.to_string_lossy();
        let unique = name.split(':').next().unwrap_or(&name);
        Some(self.cur.join(format!("{unique}:2,S")))
    }

    /// Feeds every waiting message to the intake; returns how many were handled. One
    /// that fails to be stored stays in `new/` for the next pass, without holding up the
    /// others.
    pub async fn feed(&self, desk: &Desk) -> Result<usize, SupportError> {
        let waiting = self.waiting().await.map_err(|e| {
            SupportError::Config(format!("support.mail_dir: {}: {e}", self.new.display()))
        })?;
        let mut handled = 0;
        for path in waiting {
            let file = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let raw = match read_bounded(&path).await {
                Ok(raw) => raw,
                // Another replica took it first.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(file = ?file, error = %e, "maildir message unreadable; left in new/");
                    continue;
                }
            };
            let outcome = match desk.intake(&raw).await {
                Ok(outcome) => outcome,
                Err(e) => {
                    tracing::warn!(file = ?file, error = %e, "maildir message not stored; left in new/");
                    continue;
                }
            };
            let outcome = match outcome {
                MailOutcome::Opened(_) => "opened",
                MailOutcome::Replied(_) => "replied",
                MailOutcome::Duplicate(_) => "duplicate",
                MailOutcome::Quarantined { .. } => "quarantined",
            };
            handled += 1;
            let Some(target) = self.seen(&path) else {
                continue;
            };
            match tokio::fs::rename(&path, &target).await {
                Ok(()) => tracing::info!(file = ?file, outcome, "maildir message taken in"),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Offered again next pass, and recognised then.
                Err(e) => {
                    tracing::warn!(file = ?file, error = %e, "maildir message stored but not moved to cur/")
                }
            }
        }
        Ok(handled)
    }
}

/// The message, or its first `MAX_MAIL_BYTES + 1` bytes: enough for the intake to keep a
/// larger one aside without reading it all into memory.
async fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let file = tokio::fs::File::open(path).await?;
    let mut raw = Vec::new();
    file.take(MAX_MAIL_BYTES as u64 + 1)
        .read_to_end(&mut raw)
        .await?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_handled_message_is_flagged_seen_in_cur() {
        let root = std::env::temp_dir().join(format!("relais-maildir-{}", uuid::Uuid::new_v4()));
        let maildir = Maildir::open(&root).unwrap();
        for sub in ["new", "cur", "tmp"] {
            assert!(root.join(sub).is_dir());
        }
        let seen = |name: &str| maildir.seen(&root.join("new").join(name)).unwrap();
        assert_eq!(
            seen("1700000000.M1P2.host"),
            root.join("cur/1700000000.M1P2.host:2,S")
        );
        assert_eq!(
            seen("1700000000.M1P2.host:2,"),
            root.join("cur/1700000000.M1P2.host:2,S")
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn messages_wait_oldest_first_and_large_ones_are_read_in_part() {
        let root = std::env::temp_dir().join(format!("relais-maildir-{}", uuid::Uuid::new_v4()));
        let maildir = Maildir::open(&root).unwrap();
        std::fs::write(root.join("new/b"), b"second").unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let first = std::fs::File::create(root.join("new/a")).unwrap();
        first.set_modified(past).unwrap();
        std::fs::write(root.join("new/.hidden"), b"x").unwrap();
        std::fs::create_dir(root.join("new/dir")).unwrap();
        let waiting = maildir.waiting().await.unwrap();
        assert_eq!(waiting, [root.join("new/a"), root.join("new/b")]);
        std::fs::write(root.join("new/big"), vec![b'a'; MAX_MAIL_BYTES + 10]).unwrap();
        let raw = read_bounded(&root.join("new/big")).await.unwrap();
        assert_eq!(raw.len(), MAX_MAIL_BYTES + 1);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
