//! A closed-loop HTTP/1.1 load generator for the SDK benches: `connections` keep-alive
//! connections, each sending prepared request bytes (built before the run, so the generator
//! does no formatting while it measures) and reading each response before the next, for a fixed
//! time. It records every request's latency, and the server process's CPU time (utime + stime
//! from `/proc/<pid>/stat`) around the run, so the cost per request is the server's alone,
//! whatever the generator itself costs on the same cores.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Prepared requests, sent in turn: connection `c` starts at request `c` and steps by the
/// number of connections, so with as many requests as identities each identity is sent by
/// one connection in turn. With `once`, each request is sent at most once (a flood of new
/// identities), and the run ends when they are used up or the time is.
pub struct Requests {
    pub raw: Vec<Vec<u8>>,
    pub once: bool,
}

impl Requests {
    /// A `GET` with the environment key.
    pub fn get(path: &str, key: &str) -> Requests {
        Requests {
            raw: vec![format!(
                "GET {path} HTTP/1.1\r\nHost: bench\r\nX-Environment-Key: {key}\r\n\r\n"
            )
            .into_bytes()],
            once: false,
        }
    }

    /// One `POST` of a JSON body per element of `bodies`.
    pub fn post(path: &str, key: &str, bodies: impl IntoIterator<Item = String>) -> Requests {
        Requests {
            raw: bodies
                .into_iter()
                .map(|body| {
                    format!(
                        "POST {path} HTTP/1.1\r\nHost: bench\r\nX-Environment-Key: {key}\r\n\
                         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .into_bytes()
                })
                .collect(),
            once: false,
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub requests: usize,
    pub elapsed: Duration,
    /// Responses that were not 200.
    pub errors: usize,
    /// Server CPU (user + system) over the run.
    pub server_cpu: Duration,
    /// Latencies, sorted.
    latencies: Vec<Duration>,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Server CPU per request, µs.
    pub fn cpu_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.requests.max(1) as f64
    }

    /// The `q` quantile of latency, ms.
    pub fn latency_ms(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

/// The CPU time (user + system, all threads, including exited ones) of process `pid`.
pub fn process_cpu(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("bad /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) (utime, stime) are the 12th and 13th after the name.
    let ticks: u64 = fields.get(11).context("no utime")?.parse::<u64>()?
        + fields.get(12).context("no stime")?.parse::<u64>()?;
    let hz = clock_ticks();
    Ok(Duration::from_secs_f64(ticks as f64 / hz as f64))
}

/// Kernel clock ticks per second (`getconf CLK_TCK`; 100 on Linux unless reconfigured).
fn clock_ticks() -> u64 {
    static HZ: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// The 1-minute load average, for the report.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Sends `requests` over `connections` connections for `duration` and measures.
pub async fn run(
    addr: SocketAddr,
    server_pid: u32,
    requests: Arc<Requests>,
    connections: usize,
    duration: Duration,
) -> anyhow::Result<Outcome> {
    let connections = connections.max(1);
    let mut streams = Vec::with_capacity(connections);
    for _ in 0..connections {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to {addr}"))?;
        s.set_nodelay(true)?;
        streams.push(s);
    }
    // Flood mode: a shared cursor so no request is sent twice.
    let cursor = Arc::new(AtomicUsize::new(0));
    let cpu_before = process_cpu(server_pid)?;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for (c, mut stream) in streams.into_iter().enumerate() {
        let (requests, cursor) = (requests.clone(), cursor.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0;
            let mut buf = Vec::with_capacity(64 << 10);
            let n = requests.raw.len();
            let mut i = c % n;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let req = if requests.once {
                    let i = cursor.fetch_add(1, Ordering::Relaxed);
                    match requests.raw.get(i) {
                        Some(r) => r,
                        None => break,
                    }
                } else {
                    let r = &requests.raw[i];
                    i = (i + connections) % n;
                    r
                };
                stream.write_all(req).await?;
                let (status, _) = read_response(&mut stream, &mut buf).await?;
                latencies.push(now.elapsed());
                if status != 200 {
                    errors += 1;
                }
            }
            anyhow::Ok((latencies, errors))
        }));
    }
    let mut out = Outcome::default();
    for t in tasks {
        let (l, e) = t.await??;
        out.latencies.extend(l);
        out.errors += e;
    }
    out.elapsed = start.elapsed();
    out.server_cpu = process_cpu(server_pid)?.saturating_sub(cpu_before);
    out.requests = out.latencies.len();
    out.latencies.sort_unstable();
    Ok(out)
}

/// One request on a new connection: the response's status and body.
pub async fn fetch(addr: SocketAddr, request: &[u8]) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut buf = Vec::new();
    let (status, body_at) = read_response(&mut stream, &mut buf).await?;
    Ok((status, buf.split_off(body_at)))
}

/// Reads one response (status line, headers with `Content-Length`, body) into `buf`; returns
/// its status and where the body starts. Closed loop: the server sends nothing unasked, so
/// `buf` holds exactly one response.
pub(super) async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<(u16, usize)> {
    buf.clear();
    let head_end = loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            break p + 4;
        }
        read_more(stream, buf).await?;
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head is not UTF-8")?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.trim().parse::<usize>())
        .transpose()?;
    let Some(length) = length else {
        bail!("response without Content-Length: {head:?}");
    };
    while buf.len() < head_end + length {
        read_more(stream, buf).await?;
    }
    Ok((status, head_end))
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let len = buf.len();
    buf.resize(len + (32 << 10), 0);
    let n = stream.read(&mut buf[len..]).await?;
    buf.truncate(len + n);
    if n == 0 {
        bail!("connection closed by the server");
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
