use std::path::{Path, PathBuf};
use std::time::Duration;

use relais_proto::support::v1 as pb;
use relais_support::SupportConfig;

use crate::common::{Support, WAIT, staff};

/// A Maildir of the test's own, removed when dropped.
struct TestMaildir {
    root: PathBuf,
}

impl TestMaildir {
    fn new() -> Self {
        let root = std::env::temp_dir().join(format!("relais-maildir-{}", uuid::Uuid::new_v4()));
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        TestMaildir { root }
    }

    /// Delivers as a mail transfer agent does: written in tmp/, renamed into new/.
    fn deliver(&self, name: &str, raw: &[u8]) {
        let tmp = self.root.join("tmp").join(name);
        std::fs::write(&tmp, raw).unwrap();
        std::fs::rename(&tmp, self.root.join("new").join(name)).unwrap();
    }

    fn names(&self, sub: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root.join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Polls until new/ is empty: every message there has been taken in.
    async fn wait_taken_in(&self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.names("new").is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for the maildir to be read"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn path(&self) -> &Path {
        &self.root
    }
}

impl Drop for TestMaildir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

const GOOD: &[u8] = b"From: Ops <ops@idp-a.example>\r\nTo: support@relais.example\r\n\
Subject: Jetons refuses\r\nMessage-ID: <md1@idp-a.example>\r\n\r\n\
Nos jetons sont refuses depuis ce matin.\r\n";

const MALFORMED: &[u8] = b"Subject: no sender\r\nMessage-ID: <md2@x>\r\n\r\nbody\r\n";

async fn tickets(support: &mut Support) -> Vec<pb::Ticket> {
    support
        .client
        .list_tickets(pb::ListTicketsRequest {
            caller: Some(staff("level1")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .tickets
}

async fn kept_aside(support: &mut Support) -> Vec<pb::QuarantinedMail> {
    support
        .client
        .list_quarantined_mail(pb::ListQuarantinedMailRequest {
            caller: Some(staff("level1")),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .mails
}

#[tokio::test]
async fn maildir_messages_are_taken_in_once_even_across_a_restart() {
    let maildir = TestMaildir::new();
    let config = SupportConfig {
        mail_dir: maildir.path().display().to_string(),
        mail_poll_interval_ms: 50,
        ..SupportConfig::default()
    };
    let mut support = Support::start_with(config).await;

    maildir.deliver("1700000001.M1P1.mx", GOOD);
    maildir.deliver("1700000002.M2P1.mx", MALFORMED);
    maildir.wait_taken_in().await;
    assert_eq!(
        maildir.names("cur"),
        ["1700000001.M1P1.mx:2,S", "1700000002.M2P1.mx:2,S"]
    );
    let opened = tickets(&mut support).await;
    assert_eq!(opened.len(), 1);
    assert_eq!(
        (opened[0].partner_id.as_str(), opened[0].subject.as_str()),
        ("idp-a", "Jetons refuses")
    );
    let ticket = support.get(staff("level1"), &opened[0].id).await;
    assert!(
        ticket.history[0]
            .details
            .contains("Nos jetons sont refuses")
    );
    let aside = kept_aside(&mut support).await;
    assert_eq!(aside.len(), 1);
    assert_eq!(aside[0].reason, "malformed: no sender address (From)");

    // A crash after storing, before the move: both are still in new/ at the restart.
    // Offered again, they are recognised; what is in cur/ is not read again.
    let mut support = support
        .restart(|| {
            maildir.deliver("1700000001.M1P1.mx", GOOD);
            maildir.deliver("1700000002.M2P1.mx", MALFORMED);
        })
        .await;
    maildir.wait_taken_in().await;
    assert_eq!(maildir.names("cur").len(), 2);
    assert_eq!(tickets(&mut support).await.len(), 1);
    let again = kept_aside(&mut support).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, aside[0].id);

    // And a reply dropped after the restart lands on its thread.
    maildir.deliver(
        "1700000003.M3P1.mx",
        b"From: ops@idp-a.example\r\nSubject: Re: Jetons refuses\r\n\
Message-ID: <md3@idp-a.example>\r\nIn-Reply-To: <md1@idp-a.example>\r\n\r\n\
Toujours en erreur.\r\n",
    );
    maildir.wait_taken_in().await;
    let ticket = support.get(staff("level1"), &opened[0].id).await;
    let actions: Vec<&str> = ticket.history.iter().map(|h| h.action.as_str()).collect();
    assert_eq!(actions, ["opened", "commented"]);
    support.stop().await;
}
