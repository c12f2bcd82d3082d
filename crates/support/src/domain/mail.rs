//! Reading an inbound e-mail (RFC 5322, MIME) into what a ticket needs, or the reason it
//! cannot be used. Addresses and Message-IDs are compared lowercased and without angle
//! brackets.

use mail_parser::{MessageParser, MimeHeaders};
use sha2::{Digest, Sha256};

use super::ticket::Attachment;

/// Larger messages are kept aside unread.
pub const MAX_MAIL_BYTES: usize = 10 * 1024 * 1024;
const MAX_SUBJECT: usize = 200;

/// A usable inbound message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundMail {
    pub message_id: String,
    /// The sender's address, lowercased.
    pub from: String,
    /// `In-Reply-To` then `References`, the thread this message answers.
    pub replies_to: Vec<String>,
    pub subject: String,
    pub body: String,
    pub attachments: Vec<Attachment>,
}

fn normalise_id(id: &str) -> String {
    id.trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_ascii_lowercase()
}

/// The sender's address as the raw message gives it, even when the rest is unusable,
/// so a message kept aside still says who sent it.
pub fn sender(raw: &[u8]) -> Option<String> {
    let message = MessageParser::default().parse(raw)?;
    message
        .from()?
        .first()?
        .address()
        .map(|a| a.trim().to_ascii_lowercase())
}

/// PostgreSQL text and JSONB refuse NUL: a message carrying one would fail on every try.
fn without_nul(s: &str) -> String {
    s.replace('\0', "")
}

/// Parses `raw`; the error is the reason to keep the message aside.
pub fn parse(raw: &[u8]) -> Result<InboundMail, String> {
    if raw.len() > MAX_MAIL_BYTES {
        return Err(format!("larger than {MAX_MAIL_BYTES} bytes"));
    }
    let message = MessageParser::default()
        .parse(raw)
        .ok_or("not an RFC 5322 message")?;
    if message.headers().is_empty() {
        return Err("no header".into());
    }
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| a.contains('@'))
        .ok_or("no sender address (From)")?;
    let message_id = message
        .message_id()
        .map(normalise_id)
        .filter(|id| !id.is_empty())
        .ok_or("no Message-ID")?;
    let mut replies_to = Vec::new();
    for header in [message.in_reply_to(), message.references()] {
        for id in header.as_text_list().unwrap_or_default() {
            let id = normalise_id(id);
            if !id.is_empty() && !replies_to.contains(&id) {
                replies_to.push(id);
            }
        }
    }
    let body = message
        .body_text(0)
        .map(|b| without_nul(b.trim()))
        .filter(|b| !b.is_empty())
        .ok_or("no text body")?;
    let subject: String = message
        .subject()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("(no subject)")
        .chars()
        .filter(|c| *c != '\0')
        .take(MAX_SUBJECT)
        .collect();
    let attachments = message
        .attachments()
        .map(|part| Attachment {
            file_name: without_nul(part.attachment_name().unwrap_or("attachment")),
            content_type: part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{sub}", ct.ctype()),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".into()),
            size: part.contents().len() as u64,
            sha256: hex::encode(Sha256::digest(part.contents())),
        })
        .collect();
    Ok(InboundMail {
        message_id,
        from,
        replies_to,
        subject,
        body,
        attachments,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    const NEW: &str = "From: Ops IdP A <Ops@IdP-A.example>\r\n\
To: support@relais.example\r\n\
Subject: Connexions impossibles\r\n\
Message-ID: <abc-1@idp-a.example>\r\n\
Date: Mon, 3 Mar 2025 10:00:00 +0100\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Plus aucun usager ne peut se connecter depuis 9h.\r\n\
--b1\r\n\
Content-Type: text/plain; name=\"trace.log\"\r\n\
Content-Disposition: attachment; filename=\"trace.log\"\r\n\
\r\n\
error 500\r\n\
--b1--\r\n";

    #[test]
    fn a_new_message_with_an_attachment() {
        let mail = parse(NEW.as_bytes()).unwrap();
        assert_eq!(mail.from, "ops@idp-a.example");
        assert_eq!(mail.message_id, "abc-1@idp-a.example");
        assert!(mail.replies_to.is_empty());
        assert_eq!(mail.subject, "Connexions impossibles");
        assert_eq!(
            mail.body,
            "Plus aucun usager ne peut se connecter depuis 9h."
        );
        assert_eq!(mail.attachments.len(), 1);
        let file = &mail.attachments[0];
        assert_eq!(file.file_name, "trace.log");
        assert_eq!(file.content_type, "text/plain");
        assert_eq!(file.size, 9);
        assert_eq!(file.sha256, hex::encode(Sha256::digest(b"error 500")));
    }

    #[test]
    fn a_reply_names_its_thread() {
        let reply = "From: ops@idp-a.example\r\nSubject: Re: x\r\n\
Message-ID: <abc-2@idp-a.example>\r\nIn-Reply-To: <ABC-1@idp-a.example>\r\n\
References: <root@relais.example> <abc-1@idp-a.example>\r\n\r\nStill broken.\r\n";
        let mail = parse(reply.as_bytes()).unwrap();
        assert_eq!(
            mail.replies_to,
            ["abc-1@idp-a.example", "root@relais.example"]
        );
        assert_eq!(mail.body, "Still broken.");
    }

    #[test]
    fn nul_characters_are_dropped() {
        let raw = "From: a@b.example\r\nSubject: x\0y\r\nMessage-ID: <n@b>\r\n\r\nbo\0dy\r\n";
        let mail = parse(raw.as_bytes()).unwrap();
        assert_eq!((mail.subject.as_str(), mail.body.as_str()), ("xy", "body"));
    }

    #[test]
    fn unusable_messages_say_why() {
        let cases = [
            ("", "not an RFC 5322 message"),
            (
                "Subject: hi\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n",
                "no sender address",
            ),
            (
                "From: a@b.example\r\nSubject: hi\r\n\r\nbody\r\n",
                "no Message-ID",
            ),
            (
                "From: a@b.example\r\nMessage-ID: <a@b>\r\n\r\n   \r\n",
                "no text body",
            ),
        ];
        for (raw, reason) in cases {
            let err = parse(raw.as_bytes()).unwrap_err();
            assert!(err.contains(reason), "{raw:?}: {err}");
        }
        assert_eq!(
            sender(b"From: a@B.example\r\nSubject: hi\r\n\r\nbody\r\n").as_deref(),
            Some("a@b.example")
        );
        let huge = vec![b'a'; MAX_MAIL_BYTES + 1];
        assert!(parse(&huge).unwrap_err().contains("larger"));
    }
}
