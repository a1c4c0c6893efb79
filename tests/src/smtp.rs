//! A small, faithful SMTP receiver for tests (RFC 5321: greeting, EHLO/HELO, MAIL, RCPT,
//! DATA with dot-unstuffing, RSET, NOOP, QUIT, replies with codes), listening on
//! 127.0.0.1 over real TCP. It can refuse recipients (550), be stopped (connections cut,
//! port closed) and started again on the same port, and keeps what it received. Also: the
//! [`Mailbox`] a test reads an app's mail from (this server, or the development `.eml`
//! files), and [`ReceivedMail`], a received message decoded far enough to read its text,
//! HTML and links.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What one SMTP transaction delivered.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub data: String,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Envelope>>,
    refused: Mutex<HashSet<String>>,
    /// Every command line seen, for asserting on the conversation.
    commands: Mutex<Vec<String>>,
}

/// The test SMTP server; clones share it.
#[derive(Clone)]
pub struct SmtpServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl SmtpServer {
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let s = SmtpServer {
            addr,
            shared: Arc::new(Shared::default()),
            task: Arc::new(Mutex::new(None)),
        };
        s.serve(listener);
        s
    }

    /// A server that is not running yet (its port reserved and released): the app sees a
    /// refused connection until [`SmtpServer::resume`].
    pub async fn stopped() -> SmtpServer {
        let s = SmtpServer::start().await;
        s.stop();
        s
    }

    fn serve(&self, listener: TcpListener) {
        let shared = self.shared.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                conns.spawn(session(stream, shared.clone()));
            }
        });
        *self.task.lock().unwrap() = Some(task);
    }

    /// The URL for `PARLO_SMTP_URL` (plain SMTP on loopback).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Refuses `RCPT TO` for this address with a permanent 550.
    pub fn refuse(&self, address: &str) {
        self.shared
            .refused
            .lock()
            .unwrap()
            .insert(address.to_lowercase());
    }

    /// Closes the port and every open connection.
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap().take() {
            t.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn resume(&self) {
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("rebinding the test SMTP port {}: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    pub fn received(&self) -> Vec<Envelope> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn commands(&self) -> Vec<String> {
        self.shared.commands.lock().unwrap().clone()
    }
}

async fn reply(w: &mut (impl AsyncWriteExt + Unpin), line: &str) -> std::io::Result<()> {
    w.write_all(line.as_bytes()).await?;
    w.write_all(b"\r\n").await?;
    w.flush().await
}

fn path_arg(rest: &str) -> Option<String> {
    let start = rest.find('<')?;
    let end = rest[start..].find('>')? + start;
    Some(rest[start + 1..end].to_owned())
}

async fn session(stream: TcpStream, shared: Arc<Shared>) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    if reply(&mut w, "220 smtp.test ESMTP ready").await.is_err() {
        return;
    }
    let mut greeted = false;
    let mut from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let cmd = line.trim_end_matches(['\r', '\n']).to_owned();
        shared.commands.lock().unwrap().push(cmd.clone());
        let upper = cmd.to_ascii_uppercase();
        let verb = upper.split(' ').next().unwrap_or("");
        let out = match verb {
            "EHLO" => {
                greeted = true;
                from = None;
                rcpts.clear();
                "250-smtp.test greets you\r\n250-SIZE 10485760\r\n250 HELP".to_owned()
            }
            "HELO" => {
                greeted = true;
                "250 smtp.test".to_owned()
            }
            "MAIL" if !greeted => "503 5.5.1 EHLO first".to_owned(),
            "MAIL" => match upper
                .strip_prefix("MAIL FROM:")
                .and_then(|_| path_arg(&cmd))
            {
                Some(f) => {
                    from = Some(f);
                    rcpts.clear();
                    "250 2.1.0 OK".to_owned()
                }
                None => "501 5.5.4 Syntax: MAIL FROM:<address>".to_owned(),
            },
            "RCPT" if from.is_none() => "503 5.5.1 MAIL first".to_owned(),
            "RCPT" => match upper.strip_prefix("RCPT TO:").and_then(|_| path_arg(&cmd)) {
                Some(to) if shared.refused.lock().unwrap().contains(&to.to_lowercase()) => {
                    "550 5.1.1 mailbox unavailable".to_owned()
                }
                Some(to) => {
                    rcpts.push(to);
                    "250 2.1.5 OK".to_owned()
                }
                None => "501 5.5.4 Syntax: RCPT TO:<address>".to_owned(),
            },
            "DATA" if rcpts.is_empty() => "503 5.5.1 no valid recipients".to_owned(),
            "DATA" => {
                if reply(&mut w, "354 end data with <CR><LF>.<CR><LF>")
                    .await
                    .is_err()
                {
                    return;
                }
                let mut data = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    // Dot-unstuffing (RFC 5321 4.5.2).
                    let l = line.strip_prefix('.').unwrap_or(&line);
                    data.push_str(l);
                }
                shared.received.lock().unwrap().push(Envelope {
                    mail_from: from.take().unwrap_or_default(),
                    rcpt_to: std::mem::take(&mut rcpts),
                    data,
                });
                "250 2.0.0 queued".to_owned()
            }
            "RSET" => {
                from = None;
                rcpts.clear();
                "250 2.0.0 OK".to_owned()
            }
            "NOOP" => "250 2.0.0 OK".to_owned(),
            "QUIT" => {
                let _ = reply(&mut w, "221 2.0.0 bye").await;
                return;
            }
            _ => "502 5.5.2 command not recognized".to_owned(),
        };
        if reply(&mut w, &out).await.is_err() {
            return;
        }
    }
}

/// A received message, decoded: headers, the text and HTML parts.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub rcpt_to: Vec<String>,
    pub raw: String,
    pub headers: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl ReceivedMail {
    pub fn parse(raw: &str, rcpt_to: Vec<String>) -> ReceivedMail {
        let raw = raw.replace("\r\n", "\n");
        let (headers, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let headers = unfold(headers);
        let subject = header(&headers, "subject")
            .map(decode_words)
            .unwrap_or_default();
        let boundary = header(&headers, "content-type")
            .and_then(|ct| ct.split("boundary=").nth(1))
            .map(|b| {
                b.trim_matches('"')
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_owned()
            })
            .unwrap_or_default();
        let mut text = String::new();
        let mut html = String::new();
        for part in body.split(&format!("--{boundary}")) {
            let Some((ph, pb)) = part.trim_start_matches('\n').split_once("\n\n") else {
                continue;
            };
            let ph = unfold(ph);
            let decoded = match header(&ph, "content-transfer-encoding")
                .unwrap_or("7bit")
                .to_ascii_lowercase()
                .as_str()
            {
                "base64" => String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(pb.split_whitespace().collect::<String>())
                        .unwrap_or_default(),
                )
                .unwrap_or_default(),
                "quoted-printable" => quoted_printable(pb),
                _ => pb.to_owned(),
            };
            match header(&ph, "content-type") {
                Some(ct) if ct.starts_with("text/plain") => text = decoded,
                Some(ct) if ct.starts_with("text/html") => html = decoded,
                _ => {}
            }
        }
        ReceivedMail {
            rcpt_to,
            headers: headers.clone(),
            raw: raw.clone(),
            subject,
            text,
            html,
        }
    }

    /// The value of a header of the message.
    pub fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name).map(str::to_owned)
    }

    /// The first link (`http…`) in the text part that contains `needle` (e.g. `/verify/`).
    pub fn link(&self, needle: &str) -> String {
        self.text
            .split_whitespace()
            .find(|w| w.starts_with("http") && w.contains(needle))
            .unwrap_or_else(|| panic!("no link with {needle} in the mail:\n{}", self.text))
            .to_owned()
    }

    /// The path (and query) of that link, to follow it on the test's own client.
    pub fn link_path(&self, needle: &str) -> String {
        let link = url::Url::parse(&self.link(needle)).unwrap();
        match link.query() {
            Some(q) => format!("{}?{q}", link.path()),
            None => link.path().to_owned(),
        }
    }
}

fn unfold(headers: &str) -> String {
    headers.replace("\n ", " ").replace("\n\t", " ")
}

fn header<'a>(headers: &'a str, name: &str) -> Option<&'a str> {
    headers.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

fn quoted_printable(s: &str) -> String {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' if bytes.get(i + 1) == Some(&b'\n') => i += 2,
            b'=' if i + 2 < bytes.len() => {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => out.push(b),
                    Err(_) => out.extend_from_slice(&bytes[i..i + 3]),
                }
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// RFC 2047 encoded words (`=?utf-8?b?…?=` and `=?utf-8?q?…?=`), enough for subjects.
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut last_encoded = false;
    for word in s.split_whitespace() {
        let decoded = word
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|w| {
                let mut it = w.splitn(3, '?');
                let (_, enc, text) = (it.next()?, it.next()?, it.next()?);
                match enc.to_ascii_lowercase().as_str() {
                    "b" => String::from_utf8(
                        base64::engine::general_purpose::STANDARD
                            .decode(text)
                            .ok()?,
                    )
                    .ok(),
                    "q" => Some(quoted_printable(&text.replace('_', " "))),
                    _ => None,
                }
            });
        // Space between two encoded words is not part of the text (RFC 2047 6.2).
        let between_encoded = decoded.is_some() && last_encoded;
        if !out.is_empty() && !between_encoded {
            out.push(' ');
        }
        last_encoded = decoded.is_some();
        out.push_str(decoded.as_deref().unwrap_or(word));
    }
    out
}

/// Where a test reads an app's mail: the test SMTP server it was given, or the
/// development outbox directory (`.eml` files) when it has none.
#[derive(Clone)]
pub enum Mailbox {
    Smtp(SmtpServer),
    Files(PathBuf),
}

impl Mailbox {
    /// Every mail to `to` that arrived so far, oldest first.
    pub fn all(&self, to: &str) -> Vec<ReceivedMail> {
        let to = to.to_lowercase();
        match self {
            Mailbox::Smtp(s) => s
                .received()
                .into_iter()
                .filter(|e| e.rcpt_to.iter().any(|r| r.to_lowercase() == to))
                .map(|e| ReceivedMail::parse(&e.data, e.rcpt_to.clone()))
                .collect(),
            Mailbox::Files(dir) => {
                let mut paths: Vec<_> = std::fs::read_dir(dir)
                    .map(|es| es.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default();
                // Outbox ids are UUIDv7: names sort in queueing order.
                paths.sort();
                paths
                    .iter()
                    .filter_map(|p| std::fs::read_to_string(p).ok())
                    .map(|raw| ReceivedMail::parse(&raw, vec![to.clone()]))
                    .filter(|m| {
                        m.header("to")
                            .is_some_and(|t| t.to_lowercase().contains(&to))
                    })
                    .collect()
            }
        }
    }

    pub fn count(&self, to: &str) -> usize {
        self.all(to).len()
    }

    /// Waits (up to 30 s) for the `n`-th mail to `to` and returns all of them, oldest first.
    pub async fn wait_for_n(&self, to: &str, n: usize) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.all(to);
            if found.len() >= n {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {n} mails to {to} within 30 s (found {})",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The newest mail to `to`, once there are at least `n`.
    pub async fn nth(&self, to: &str, n: usize) -> ReceivedMail {
        self.wait_for_n(to, n).await.swap_remove(n - 1)
    }
}
