//! The load test's own receiver: a small HTTP/1.1 server on 127.0.0.1 that answers every request
//! `200` with an empty body and tallies the deliveries it sees.
//!
//! Written on tokio rather than actix-web because it has to look at every body anyway (the
//! latency marker) and because the ceiling phase must measure the client, not the sink: one
//! read, one search for the end of the head, one write per request, responses to pipelined
//! requests written together. `TCP_NODELAY` is set on every accepted socket: without it a
//! keep-alive client waits ~40 ms for each response (Nagle + delayed ACK) and the engine would
//! look a hundred times slower than it is.
//!
//! A delivery is recognised by its path, `/w/<webhook index>`, and by the marker the producer
//! put in the event's `comment` (which Sanplex's `default` payload carries verbatim):
//! `lt:<event seq>:<send time µs>`. Any other request (the ceiling phase) is only counted.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use memchr::memmem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The path prefix of the load test's webhooks: `/w/<index>`.
pub const WEBHOOK_PATH: &str = "/w/";

/// The marker prefix the producer writes into each event's `comment`.
pub const MARKER: &[u8] = b"lt:";

/// A request head larger than this is refused (431) and the connection closed.
const MAX_HEAD: usize = 64 << 10;

/// A request body larger than this is refused (413): deliveries are a few hundred bytes.
const MAX_BODY: usize = 16 << 20;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
const OK_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// What arrived, shared between the sink's connections and the run that watches it.
pub struct Tally {
    /// The run's clock: markers carry microseconds since this instant.
    pub epoch: Instant,
    events: u64,
    webhooks: u64,
    /// One bit per (webhook, event): set on the first arrival, so a second one is a duplicate.
    seen: Vec<AtomicU64>,
    /// Distinct deliveries that arrived.
    pub arrived: AtomicU64,
    /// Deliveries that arrived again.
    pub duplicates: AtomicU64,
    /// Requests on a webhook path without a readable marker (a bug in the test or the engine).
    pub unmatched: AtomicU64,
    /// Every other request (the ceiling phase).
    pub other: AtomicU64,
    /// When the latest delivery arrived, in µs since `epoch`.
    pub last_arrival_us: AtomicU64,
    /// Event → sink latency of each distinct delivery, in µs.
    latencies_us: Mutex<Vec<u32>>,
}

impl Tally {
    /// A tally expecting `events` × `webhooks` deliveries.
    pub fn new(epoch: Instant, events: u64, webhooks: u64) -> Tally {
        let bits = events.saturating_mul(webhooks);
        Tally {
            epoch,
            events,
            webhooks,
            seen: (0..bits.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            arrived: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            other: AtomicU64::new(0),
            last_arrival_us: AtomicU64::new(0),
            latencies_us: Mutex::new(Vec::with_capacity(bits.min(1 << 24) as usize)),
        }
    }

    /// Microseconds since the run's epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The recorded latencies (µs), taken out of the tally.
    pub fn take_latencies(&self) -> Vec<u32> {
        self.latencies_us
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default()
    }

    /// Counts one request.
    fn record(&self, path: &[u8], body: &[u8]) {
        let Some(hook) = path.strip_prefix(WEBHOOK_PATH.as_bytes()) else {
            self.other.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let now = self.now_us();
        let parsed = parse_u64(hook).and_then(|(w, _)| {
            let at = memmem::find(body, MARKER)? + MARKER.len();
            let (seq, rest) = parse_u64(&body[at..])?;
            let (sent, _) = parse_u64(rest.strip_prefix(b":")?)?;
            Some((w, seq, sent))
        });
        let Some((w, seq, sent)) =
            parsed.filter(|(w, s, _)| *w < self.webhooks && *s < self.events)
        else {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let bit = w * self.events + seq;
        let mask = 1u64 << (bit % 64);
        let before = self.seen[(bit / 64) as usize].fetch_or(mask, Ordering::Relaxed);
        if before & mask != 0 {
            self.duplicates.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let latency = now.saturating_sub(sent).min(u32::MAX as u64) as u32;
        if let Ok(mut v) = self.latencies_us.lock() {
            v.push(latency);
        }
        self.last_arrival_us.fetch_max(now, Ordering::Relaxed);
        self.arrived.fetch_add(1, Ordering::Relaxed);
    }
}

/// Leading ASCII digits as a number, and the rest.
fn parse_u64(b: &[u8]) -> Option<(u64, &[u8])> {
    let n = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 19 {
        return None;
    }
    let v = b[..n]
        .iter()
        .fold(0u64, |acc, c| acc * 10 + u64::from(c - b'0'));
    Some((v, &b[n..]))
}

/// The running sink: its own runtime, so the sink's threads are not the producers' threads.
pub struct Sink {
    /// Where the engine's webhooks and the ceiling client send.
    pub addr: std::net::SocketAddr,
    rt: Option<tokio::runtime::Runtime>,
}

impl Sink {
    /// Binds 127.0.0.1:0 and starts serving on `threads` threads.
    pub fn start(tally: Arc<Tally>, threads: usize) -> std::io::Result<Sink> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("loadtest-sink")
            .enable_io()
            .build()?;
        // Bound here, not with `rt.block_on`: the caller may itself be inside a runtime.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = {
            let _guard = rt.enter();
            TcpListener::from_std(listener)?
        };
        rt.spawn(accept_loop(listener, tally));
        Ok(Sink { addr, rt: Some(rt) })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Dropped from inside the run's own runtime: a blocking shutdown would panic there.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(listener: TcpListener, tally: Arc<Tally>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // Without NODELAY responses stall ~40 ms; a failure here only makes it slow.
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, tally.clone()));
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// One parsed request: its path and where its body is in the buffer.
struct Request {
    path_start: usize,
    path_end: usize,
    body: Body,
    /// Bytes of the buffer this request takes (head and body).
    len: usize,
    close: bool,
}

enum Body {
    Plain {
        start: usize,
        end: usize,
    },
    /// Decoded from `Transfer-Encoding: chunked`.
    Chunked(Vec<u8>),
}

/// Why a request cannot be parsed yet or at all.
enum Parse {
    Incomplete,
    Bad(&'static [u8]),
}

async fn serve_connection(mut stream: TcpStream, tally: Arc<Tally>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 << 10);
    let mut out: Vec<u8> = Vec::with_capacity(1 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        let mut close = false;
        loop {
            match parse_request(&buf[used..]) {
                Ok(req) => {
                    let base = used;
                    let path = &buf[base + req.path_start..base + req.path_end];
                    match &req.body {
                        Body::Plain { start, end } => {
                            tally.record(path, &buf[base + start..base + end])
                        }
                        Body::Chunked(body) => tally.record(path, body),
                    }
                    used += req.len;
                    if req.close {
                        out.extend_from_slice(OK_CLOSE);
                        close = true;
                        break;
                    }
                    out.extend_from_slice(OK);
                }
                Err(Parse::Incomplete) => break,
                Err(Parse::Bad(status)) => {
                    out.extend_from_slice(status);
                    close = true;
                    break;
                }
            }
        }
        buf.drain(..used);
        if !out.is_empty() {
            if stream.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
    }
}

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const TOO_LARGE_HEAD: &[u8] =
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
const TOO_LARGE: &[u8] =
    b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// Parses one request at the start of `buf`.
fn parse_request(buf: &[u8]) -> Result<Request, Parse> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(Parse::Bad(TOO_LARGE_HEAD))
        }
        Ok(httparse::Status::Partial) => return Err(Parse::Incomplete),
        Err(httparse::Error::TooManyHeaders) => return Err(Parse::Bad(TOO_LARGE_HEAD)),
        Err(_) => return Err(Parse::Bad(BAD_REQUEST)),
    };
    let path = req.path.unwrap_or("/");
    // The path is a slice of `buf`: its offset is where it starts.
    let path_start = path.as_ptr() as usize - buf.as_ptr() as usize;
    let path_end = path_start + path.len();
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut close = req.version == Some(0);
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            content_length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or(Parse::Bad(BAD_REQUEST))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = memmem::find(&h.value.to_ascii_lowercase(), b"chunked").is_some();
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    if chunked {
        let (body, used) = decode_chunked(&buf[head_len..])?;
        return Ok(Request {
            path_start,
            path_end,
            body: Body::Chunked(body),
            len: head_len + used,
            close,
        });
    }
    if content_length > MAX_BODY {
        return Err(Parse::Bad(TOO_LARGE));
    }
    if buf.len() < head_len + content_length {
        return Err(Parse::Incomplete);
    }
    Ok(Request {
        path_start,
        path_end,
        body: Body::Plain {
            start: head_len,
            end: head_len + content_length,
        },
        len: head_len + content_length,
        close,
    })
}

/// Decodes a chunked body; returns it and the bytes it took (trailers included).
fn decode_chunked(mut buf: &[u8]) -> Result<(Vec<u8>, usize), Parse> {
    let total = buf.len();
    let mut body = Vec::new();
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete(v)) => v,
            Ok(httparse::Status::Partial) => return Err(Parse::Incomplete),
            Err(_) => return Err(Parse::Bad(BAD_REQUEST)),
        };
        let size = usize::try_from(size).map_err(|_| Parse::Bad(TOO_LARGE))?;
        if body.len().saturating_add(size) > MAX_BODY {
            return Err(Parse::Bad(TOO_LARGE));
        }
        buf = &buf[size_len..];
        if size == 0 {
            // Trailers (usually none) end with an empty line.
            let end = memmem::find(buf, b"\r\n").ok_or(Parse::Incomplete)?;
            if end == 0 {
                return Ok((body, total - buf.len() + 2));
            }
            let end = memmem::find(buf, b"\r\n\r\n").ok_or(Parse::Incomplete)?;
            return Ok((body, total - buf.len() + end + 4));
        }
        if buf.len() < size + 2 {
            return Err(Parse::Incomplete);
        }
        body.extend_from_slice(&buf[..size]);
        buf = &buf[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_is_counted_once_with_its_latency() {
        let t = Tally::new(Instant::now(), 10, 2);
        let body = br#"{"objectType":"bug","comment":"lt:7:0","text":"lt:9:0"}"#;
        t.record(b"/w/1", body);
        t.record(b"/w/1", body);
        t.record(b"/w/0", body);
        t.record(b"/w/5", body);
        t.record(b"/ceiling", b"{}");
        assert_eq!(t.arrived.load(Ordering::Relaxed), 2);
        assert_eq!(t.duplicates.load(Ordering::Relaxed), 1);
        assert_eq!(t.unmatched.load(Ordering::Relaxed), 1);
        assert_eq!(t.other.load(Ordering::Relaxed), 1);
        assert_eq!(t.take_latencies().len(), 2);
    }

    #[test]
    fn requests_with_length_chunked_and_pipelined() {
        let two = b"POST /w/0 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST /x HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n1\r\n!\r\n0\r\n\r\n";
        let Ok(first) = parse_request(two) else {
            panic!("first request")
        };
        assert_eq!(&two[first.path_start..first.path_end], b"/w/0");
        assert!(matches!(first.body, Body::Plain { start, end } if &two[start..end] == b"abc"));
        let Ok(second) = parse_request(&two[first.len..]) else {
            panic!("second request")
        };
        assert!(matches!(&second.body, Body::Chunked(b) if b == b"hi!"));
        assert_eq!(first.len + second.len, two.len());
        assert!(matches!(parse_request(&two[..20]), Err(Parse::Incomplete)));
        assert!(matches!(
            parse_request(b"POST /w/0 HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc"),
            Err(Parse::Incomplete)
        ));
    }
}
