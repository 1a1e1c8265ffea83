//! A `flagstone serve` child bound to port 0 (or a `worker`'s metrics listener), its log lines collected, and raw-socket clients:
//! these tests are about what a client that misbehaves at the byte level does to the server.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::Proc;

pub struct Server {
    pub proc: Proc,
    pub port: u16,
    log: Arc<Mutex<Vec<String>>>,
    _cache: tempfile::TempDir,
}

impl Server {
    /// Starts `flagstone serve` on `database_url` with `extra` options; returns once it listens.
    pub fn start(database_url: &str, extra: &[&str]) -> Server {
        let cache = tempfile::tempdir().unwrap();
        let cache_dir = cache.path().to_str().unwrap().to_string();
        let mut args = vec![
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--database-url",
            database_url,
            "--admin-key",
            "transport-test-admin-key",
            "--edge-cache-dir",
            &cache_dir,
        ];
        args.extend_from_slice(extra);
        Server::spawn(&args, "flagstone listening on", cache)
    }

    /// Starts a standalone `flagstone worker` on `database_url` with `extra` options and its
    /// metrics listener on a free port; `port` is that listener's. Returns once it listens.
    #[allow(dead_code)]
    pub fn start_worker_metrics(database_url: &str, extra: &[&str]) -> Server {
        let mut args = vec![
            "worker",
            "--database-url",
            database_url,
            "--metrics-addr",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        Server::spawn(
            &args,
            "metrics and health listening on",
            tempfile::tempdir().unwrap(),
        )
    }

    /// Runs `flagstone args…`; `port` is the one in the first log line containing `listening`.
    fn spawn(args: &[&str], listening: &'static str, cache: tempfile::TempDir) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_flagstone"))
            .args(args)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start flagstone");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[server] {line}");
                if line.contains(listening) {
                    let _ = port_tx.send(port_in(&line));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let proc = Proc(child);
        let port = port_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server says where it listens")
            .expect("a port in the listening line");
        Server {
            proc,
            port,
            log,
            _cache: cache,
        }
    }

    /// Waits (up to 10 s) for a log line containing `needle`.
    pub async fn wait_for_log(&self, needle: &str) {
        let start = Instant::now();
        while !self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no log line containing {needle:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn connect(&self) -> TcpStream {
        TcpStream::connect(("127.0.0.1", self.port)).await.unwrap()
    }
}

/// The port in "... listening on 127.0.0.1:PORT ...".
fn port_in(line: &str) -> Option<u16> {
    let rest = &line[line.find("127.0.0.1:")? + "127.0.0.1:".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// A response as read off the socket.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Reads one response with a `Content-Length` body (or just the head, for a stream).
pub async fn read_response(s: &mut TcpStream, head_only: bool) -> Response {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.expect("read a response");
        assert!(n > 0, "connection closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    if !head_only {
        while body.len() < length {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connection closed inside a body");
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Response {
        status,
        head,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

/// Sends a request and reads its response on a connection kept alive.
pub async fn request(s: &mut TcpStream, raw: &str) -> Response {
    s.write_all(raw.as_bytes()).await.unwrap();
    read_response(s, false).await
}

/// Whether the server closes `s` (EOF or reset, after discarding anything sent) within `within`.
pub async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .is_ok()
}

/// Whether nothing at all arrives on `s` within `within` (and it stays open).
pub async fn silent_for(s: &mut TcpStream, within: Duration) -> bool {
    let mut chunk = [0u8; 1];
    tokio::time::timeout(within, s.read(&mut chunk))
        .await
        .is_err()
}
