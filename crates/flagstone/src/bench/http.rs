//! A small keep-alive HTTP/1.1 client for the bench: JSON requests to the admin API over one
//! TCP connection each, as an admin tool or script would send them. It understands
//! `Content-Length` and chunked bodies, which is all axum sends.

use std::net::SocketAddr;

use anyhow::{bail, Context};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub struct Client {
    addr: SocketAddr,
    auth: String,
    conn: Option<(BufReader<OwnedReadHalf>, OwnedWriteHalf)>,
    /// Requests answered with a 5xx and sent again.
    pub retries: usize,
}

impl Client {
    pub fn new(addr: SocketAddr, admin_key: &str) -> Client {
        Client {
            addr,
            auth: format!("Api-Key {admin_key}"),
            conn: None,
            retries: 0,
        }
    }

    /// Sends one request; returns the status and body. Reconnects when the server closed the
    /// connection.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nAccept: application/json\r\n",
            self.addr, self.auth
        );
        if !body.is_empty() {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        req.push_str(&body);
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr)
                .await
                .with_context(|| format!("connect to {}", self.addr))?;
            s.set_nodelay(true)?;
            let (r, w) = s.into_split();
            self.conn = Some((BufReader::new(r), w));
        }
        let (r, w) = self.conn.as_mut().expect("connected above");
        w.write_all(req.as_bytes()).await?;
        let (status, body, close) = read_response(r).await?;
        if close {
            self.conn = None;
        }
        Ok((status, body))
    }

    /// Sends a JSON request and parses the JSON answer; any status but 2xx is an error. A 5xx
    /// answer is retried (up to 5 times) and counted in [`Client::retries`]: on SQLite a
    /// concurrent admin write can fail with "database is locked", and the bench reports how
    /// often rather than stopping.
    pub async fn json(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (mut status, mut bytes) = self.send(method, path, body).await?;
        for _ in 0..5 {
            if status < 500 {
                break;
            }
            self.retries += 1;
            (status, bytes) = self.send(method, path, body).await?;
        }
        if !(200..300).contains(&status) {
            bail!(
                "{method} {path}: HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).with_context(|| format!("{method} {path}: body"))
    }
}

/// Status, body and whether the server will close the connection.
async fn read_response(r: &mut BufReader<OwnedReadHalf>) -> anyhow::Result<(u16, Vec<u8>, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        bail!("connection closed before the response");
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let (mut length, mut chunked, mut close) = (None, false, false);
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((name, value)) = l.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = Some(value.parse::<usize>()?),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)?;
            if size == 0 {
                line.clear();
                r.read_line(&mut line).await?;
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..]).await?;
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf).await?;
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        r.read_exact(&mut body).await?;
    } else {
        r.read_to_end(&mut body).await?;
        close = true;
    }
    Ok((status, body, close))
}
