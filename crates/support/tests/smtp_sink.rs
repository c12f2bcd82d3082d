//! A local SMTP sink: just enough of RFC 5321 to accept messages, keep them for the test
//! to read, and play a relay that is down (`421` at the greeting).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::common::WAIT;

/// One message as the relay received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, dot-unstuffed, lines ending in CRLF.
    pub data: String,
}

#[derive(Default)]
struct State {
    down: bool,
    /// Connections accepted, whatever came of them.
    sessions: usize,
    /// Connections turned away while down.
    refused: usize,
    messages: Vec<Received>,
}

pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    // A client that hangs up mid-way is the client's business.
                    let _ = session(stream, state).await;
                });
            }
        });
        SmtpSink { addr, state, task }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// While down, every connection is answered `421` and closed.
    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap().messages.clone()
    }

    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    pub fn sessions(&self) -> usize {
        self.state.lock().unwrap().sessions
    }

    /// Polls until `done` holds of the sink, within the tests' bound.
    pub async fn wait(&self, what: &str, done: impl Fn(&SmtpSink) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits for `n` messages in all, and returns them.
    pub async fn wait_messages(&self, n: usize, what: &str) -> Vec<Received> {
        self.wait(what, |s| s.messages().len() >= n).await;
        self.messages()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn address(arg: &str) -> String {
    let arg = arg.trim();
    let start = arg.find('<').map_or(0, |i| i + 1);
    let end = arg.rfind('>').unwrap_or(arg.len());
    arg[start..end].to_owned()
}

async fn session(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let down = {
        let mut s = state.lock().unwrap();
        s.sessions += 1;
        if s.down {
            s.refused += 1;
        }
        s.down
    };
    if down {
        write
            .write_all(b"421 sink.test Service not available\r\n")
            .await?;
        return Ok(());
    }
    write.write_all(b"220 sink.test ESMTP\r\n").await?;
    let (mut from, mut to) = (String::new(), Vec::new());
    let mut line = Vec::new();
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let upper = text.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-sink.test\r\n250 8BITMIME\r\n"
        } else if let Some(arg) = upper.strip_prefix("MAIL FROM:") {
            from = address(&text[text.len() - arg.len()..]);
            to.clear();
            b"250 OK\r\n"
        } else if let Some(arg) = upper.strip_prefix("RCPT TO:") {
            to.push(address(&text[text.len() - arg.len()..]));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                line.clear();
                if read.read_until(b'\n', &mut line).await? == 0 {
                    return Ok(());
                }
                let text = String::from_utf8_lossy(&line);
                if text.trim_end_matches(['\r', '\n']) == "." {
                    break;
                }
                data.push_str(text.strip_prefix('.').unwrap_or(&text));
            }
            state.lock().unwrap().messages.push(Received {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
            });
            b"250 OK queued\r\n"
        } else if upper == "RSET" || upper == "NOOP" {
            b"250 OK\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 Bye\r\n").await?;
            return Ok(());
        } else {
            b"502 Command not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}
