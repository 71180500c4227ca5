//! A tiny SMTP server on loopback that accepts every message and records it, so the tests can
//! check what the gateway sends over SMTP (lettre, plain SMTP, no authentication).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};

/// Longest the sink waits for the next line of a client before hanging up.
const LINE_TIMEOUT: Duration = Duration::from_secs(60);

/// One message as received: the envelope and the data (dot-stuffing undone).
#[derive(Debug, Clone)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub data: String,
}

/// A running sink; it stops when dropped.
pub struct SmtpSink {
    /// `smtp://127.0.0.1:PORT`, for `[email] smtp_url`.
    pub url: String,
    messages: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind sink");
        let url = format!("smtp://{}", listener.local_addr().expect("addr"));
        let messages = Arc::new(Mutex::new(Vec::new()));
        let store = messages.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(session(conn, store.clone()));
            }
        });
        Self {
            url,
            messages,
            task,
        }
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.messages.lock().expect("sink lock").clone()
    }
}

/// One SMTP conversation: greeting, EHLO, then MAIL / RCPT / DATA until QUIT.
async fn session(conn: TcpStream, store: Arc<Mutex<Vec<Received>>>) {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 sink ESMTP\r\n").await;
    let (mut from, mut to) = (String::new(), Vec::new());
    while let Some(line) = next(&mut lines).await {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line);
            to.clear();
            b"250 OK\r\n"
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&line));
            b"250 OK\r\n"
        } else if upper == "DATA" {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            let mut data = String::new();
            while let Some(l) = next(&mut lines).await {
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push('\n');
            }
            store.lock().expect("sink lock").push(Received {
                from: from.clone(),
                to: to.clone(),
                data,
            });
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 OK\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}

async fn next(lines: &mut Lines<BufReader<OwnedReadHalf>>) -> Option<String> {
    let line = tokio::time::timeout(LINE_TIMEOUT, lines.next_line()).await;
    line.ok().and_then(Result::ok).flatten()
}

fn address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end].to_owned()
}
