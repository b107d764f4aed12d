//! Issue 8's fault matrix: what sanhook does when the other side misbehaves.
//!
//! - [`matrix`]: one `sanhook serve` child and one webhook per receiver behaviour (5xx,
//!   `Retry-After` in seconds and as a date, timeouts, refused and reset connections, a slow
//!   body, 410, redirects, a 10 MB answer), each checked in the delivery log and at the receiver;
//! - [`platforms`]: each chat platform's throttle and token expiry in the middle of a burst;
//! - [`producer`]: producers that drop their connection part-way through `POST /events`;
//! - [`kill`]: `kill -9` in a loop while a receiver fails a fifth of its requests;
//! - [`model`]: a model-based proptest of one destination (outcomes, restarts, manual retries).
//!
//! Everything listens and connects on 127.0.0.1 only.

mod kill;
mod matrix;
mod model;
mod platforms;
mod producer;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::binary::{free_port, write_config, Sanhook};
use crate::support::Api;

/// A `sanhook serve` child and the client of its API (which it derefs to: `b.call(..)`,
/// `b.webhook(..)`, `b.wait_deliveries(..)`).
pub struct Bin {
    pub child: Sanhook,
    pub api: Api,
    /// The config and the store (removed when dropped).
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Bin {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Bin {
    /// Starts the binary with its store in a temp dir, retrying `retries` times `retry` apart;
    /// `delivery` is more of the `[delivery]` section (`timeout = "1s"`), `rest` whole sections.
    pub async fn start(retry: &str, retries: usize, delivery: &str, rest: &str) -> Bin {
        let dir = tempfile::tempdir().expect("dir");
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let config = write_config(dir.path(), port, retry, retries);
        let mut text = std::fs::read_to_string(&config).expect("read config");
        text.push_str(delivery);
        text.push('\n');
        text.push_str(rest);
        std::fs::write(&config, text).expect("write config");
        let child = Sanhook::serve(&config, &dir.path().join("run0.log"), &base).await;
        Bin {
            child,
            api: Api::new(&base, ""),
            _dir: dir,
        }
    }
}

/// `d.len() == n` and every one has `status`.
pub fn all(d: &[Value], n: usize, status: &str) -> bool {
    d.len() == n && d.iter().all(|x| x["status"] == status)
}

/// What a [`Raw`] receiver does with one request.
#[derive(Debug, Clone)]
pub enum Act {
    /// Answers `status` with these headers and body (`Connection: close`).
    Answer(u16, Vec<(String, String)>, Vec<u8>),
    /// Reads the request and never answers; waits for the client to go away (at most 60 s).
    Hang,
    /// Writes the first `keep` bytes of an answer (`200`, a 400-byte body), then resets the
    /// connection.
    Cut { keep: usize },
    /// `200` with a `Content-Length` of 1,000, then one byte of the body every `every`.
    Trickle { every: Duration },
    /// `200` with a body of `len` bytes, written as fast as the client reads it.
    Huge(usize),
}

impl Act {
    /// `status` with an empty body.
    pub fn status(status: u16) -> Act {
        Act::Answer(status, vec![], b"ok".to_vec())
    }

    /// `status` with one header.
    pub fn with_header(status: u16, name: &str, value: &str) -> Act {
        Act::Answer(status, vec![(name.into(), value.into())], b"ok".to_vec())
    }
}

/// The answer [`Act::Cut`] cuts: `200` with a 400-byte body.
pub fn cut_answer() -> Vec<u8> {
    let mut a = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 400\r\nconnection: close\r\n\r\n".to_vec();
    a.extend(std::iter::repeat_n(b'x', 400));
    a
}

/// One request a [`Raw`] receiver read, and what became of its connection.
#[derive(Debug, Clone)]
pub struct Hit {
    /// When the request was read whole.
    pub at: Instant,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// When the client closed the connection (Hang, Trickle, Huge), if it did.
    pub closed: Option<Instant>,
    /// Bytes of the answer written.
    pub written: usize,
}

impl Hit {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

type Script = Box<dyn FnMut(usize) -> Act + Send>;

/// A receiver on raw TCP: reads one HTTP/1.1 request per connection and acts as its script
/// says for the n-th request (0-based), including what an HTTP server library would not do
/// (hang, reset part-way, trickle).
#[derive(Clone)]
pub struct Raw {
    /// `http://127.0.0.1:PORT/hook`
    pub url: String,
    pub hits: Arc<Mutex<Vec<Hit>>>,
}

impl Raw {
    /// Starts on a free port.
    pub async fn start(script: impl FnMut(usize) -> Act + Send + 'static) -> Raw {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Raw::on(listener, script)
    }

    /// Starts on `port` (one that was free: a "refused" receiver that comes up).
    pub async fn start_on(port: u16, script: impl FnMut(usize) -> Act + Send + 'static) -> Raw {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind the port again");
        Raw::on(listener, script)
    }

    fn on(listener: TcpListener, script: impl FnMut(usize) -> Act + Send + 'static) -> Raw {
        let port = listener.local_addr().expect("addr").port();
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Box::new(script)));
        let h = hits.clone();
        actix_rt::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (h, s) = (h.clone(), script.clone());
                actix_rt::spawn(async move {
                    serve_one(sock, h, s).await;
                });
            }
        });
        Raw {
            url: format!("http://127.0.0.1:{port}/hook"),
            hits,
        }
    }

    /// Every request read so far, in order.
    pub fn hits(&self) -> Vec<Hit> {
        self.hits.lock().expect("hits").clone()
    }

    pub fn count(&self) -> usize {
        self.hits.lock().expect("hits").len()
    }
}

/// Reads one request from `sock` (headers and a `Content-Length` body); `None` when the peer
/// closed first or sent something else.
async fn read_request(sock: &mut TcpStream) -> Option<(Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(len)) = req.parse(&buf) {
            let headers: Vec<(String, String)> = req
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let want: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            let mut body = buf[len..].to_vec();
            while body.len() < want {
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                body.extend_from_slice(&chunk[..n]);
            }
            return Some((headers, body));
        }
    }
}

/// Reads until the peer closes (or `limit` passes); returns when it closed.
async fn wait_closed(sock: &mut TcpStream, limit: Duration) -> Option<Instant> {
    let mut sink = [0u8; 1024];
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, sock.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(Instant::now()),
            Ok(Ok(_)) => {}
            Err(_) => return None,
        }
    }
}

async fn serve_one(mut sock: TcpStream, hits: Arc<Mutex<Vec<Hit>>>, script: Arc<Mutex<Script>>) {
    let Some((headers, body)) = read_request(&mut sock).await else {
        return;
    };
    let (idx, act) = {
        let mut h = hits.lock().expect("hits");
        let n = h.len();
        let act = (script.lock().expect("script"))(n);
        h.push(Hit {
            at: Instant::now(),
            headers,
            body,
            closed: None,
            written: 0,
        });
        (n, act)
    };
    let record = |closed: Option<Instant>, written: usize| {
        let mut h = hits.lock().expect("hits");
        h[idx].closed = closed;
        h[idx].written = written;
    };
    match act {
        Act::Answer(status, extra, body) => {
            let mut head = format!(
                "HTTP/1.1 {status} Whatever\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let mut out = head.into_bytes();
            out.extend_from_slice(&body);
            let ok = sock.write_all(&out).await.is_ok();
            let _ = sock.shutdown().await;
            record(None, if ok { out.len() } else { 0 });
        }
        Act::Hang => {
            let closed = wait_closed(&mut sock, Duration::from_secs(60)).await;
            record(closed, 0);
        }
        Act::Cut { keep } => {
            let answer = cut_answer();
            let keep = keep.min(answer.len());
            let ok = sock.write_all(&answer[..keep]).await.is_ok();
            let _ = sock.flush().await;
            // Linger 0: the close sends a reset, not a clean end. (Deprecated because a linger
            // above 0 blocks the thread on drop; 0 never does.)
            #[allow(deprecated)]
            let _ = sock.set_linger(Some(Duration::ZERO));
            drop(sock);
            record(None, if ok { keep } else { 0 });
        }
        Act::Trickle { every } => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\nconnection: close\r\n\r\n";
            let mut written = 0;
            let mut closed = None;
            if sock.write_all(head).await.is_ok() {
                written = head.len();
                for _ in 0..1000 {
                    // The pause is the behaviour (a slow body), not a wait for anything.
                    tokio::time::sleep(every).await;
                    if sock.write_all(b"x").await.is_err() {
                        closed = Some(Instant::now());
                        break;
                    }
                    written += 1;
                }
            }
            record(closed, written);
        }
        Act::Huge(len) => {
            let head =
                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n");
            let mut written = 0;
            let mut closed = None;
            if sock.write_all(head.as_bytes()).await.is_ok() {
                let block = vec![b'y'; 64 * 1024];
                while written < len {
                    let n = block.len().min(len - written);
                    if sock.write_all(&block[..n]).await.is_err() {
                        closed = Some(Instant::now());
                        break;
                    }
                    written += n;
                }
            }
            record(closed, written);
        }
    }
}

/// The peak resident memory (VmHWM) of process `pid`, in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
