//! A tiny HTTP proxy on 127.0.0.1:0: it records what it is asked (absolute-URI requests and
//! CONNECTs, with the `Proxy-Authorization` they carried) and forwards plain HTTP requests, to
//! loopback targets only; a CONNECT or any other target is refused with 403. One request per
//! connection (it answers `Connection: close`), on plain threads, so that it serves whatever
//! runtime the test runs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One request the proxy was asked to make.
#[derive(Debug, Clone)]
pub struct Asked {
    /// The request line, e.g. `POST http://127.0.0.1:4000/hook HTTP/1.1` or
    /// `CONNECT example.com:443 HTTP/1.1`.
    pub line: String,
    /// The `Proxy-Authorization` header, when sent.
    pub auth: Option<String>,
}

/// The proxy; stops when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    asked: Arc<Mutex<Vec<Asked>>>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Proxy {
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let asked: Arc<Mutex<Vec<Asked>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (a, st) = (asked.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let a = a.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &a);
                });
            }
        });
        Proxy {
            url: format!("http://127.0.0.1:{port}"),
            asked,
            stop,
            port,
        }
    }

    /// Everything asked so far.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().expect("lock").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn refuse(mut conn: TcpStream, why: &str) -> std::io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{why}",
        why.len()
    )
}

fn serve(conn: TcpStream, asked: &Mutex<Vec<Asked>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end().to_string();
    let mut headers = vec![];
    let mut length = 0usize;
    let mut auth = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            break;
        }
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap_or((h.as_str(), ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "proxy-authorization" => {
                auth = Some(value.trim().to_string());
                continue;
            }
            "connection" | "proxy-connection" | "keep-alive" => continue,
            _ => {}
        }
        headers.push(h);
    }
    asked.lock().expect("lock").push(Asked {
        line: line.clone(),
        auth,
    });
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some(rest) = target.strip_prefix("http://") else {
        return refuse(conn, "this proxy forwards plain http:// requests only");
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    // SAFETY of the test suite: nothing but loopback is ever connected to.
    let loopback = authority.starts_with("127.0.0.1:") || authority.starts_with("localhost:");
    if !loopback {
        return refuse(conn, "this proxy forwards to loopback only");
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut upstream = TcpStream::connect(authority)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for h in &headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&body)?;
    let mut answer = vec![];
    upstream.read_to_end(&mut answer)?;
    // The same answer, but saying that this connection closes.
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(answer.len());
    let head = String::from_utf8_lossy(&answer[..split]);
    let mut out = String::new();
    for (i, h) in head.split("\r\n").enumerate() {
        if i > 0 && h.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n");
    let mut conn = conn;
    conn.write_all(out.as_bytes())?;
    conn.write_all(&answer[(split + 2).min(answer.len())..])?;
    conn.flush()
}
