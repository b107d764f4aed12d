//! A fake HTTP receiver on 127.0.0.1:0 that records what it gets and answers as scripted.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Received {
    /// A header value (name lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// What to answer: status, extra headers, body.
pub type Answer = (u16, Vec<(String, String)>, String);

type Script = Box<dyn FnMut(&Received, usize) -> Answer + Send>;

/// A receiver; `url` is where to send.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    pub got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    /// Starts a receiver that answers with `script(request, index of this request)`.
    pub fn start(script: impl FnMut(&Received, usize) -> Answer + Send + 'static) -> Receiver {
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Box::new(script)));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let (g, s) = (got.clone(), script.clone());
        let server = HttpServer::new(move || {
            let (g, s) = (g.clone(), s.clone());
            App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
                let (g, s) = (g.clone(), s.clone());
                async move {
                    let r = Received {
                        path: req.path().to_string(),
                        query: req.query_string().to_string(),
                        headers: req
                            .headers()
                            .iter()
                            .map(|(k, v)| {
                                (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                        body: body.to_vec(),
                        at: std::time::Instant::now(),
                    };
                    let (status, headers, text) = {
                        let mut got = g.lock().expect("lock");
                        let n = got.len();
                        let answer = (s.lock().expect("lock"))(&r, n);
                        got.push(r);
                        answer
                    };
                    let mut resp = HttpResponse::build(
                        actix_web::http::StatusCode::from_u16(status).expect("status"),
                    );
                    for (k, v) in headers {
                        resp.insert_header((k, v));
                    }
                    resp.body(text)
                }
            }))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Receiver {
            url,
            got,
            script,
            handle,
        }
    }

    /// A receiver that always answers `status`.
    pub fn fixed(status: u16) -> Receiver {
        Receiver::start(move |_, _| (status, vec![], "ok".into()))
    }

    /// Replaces the script.
    pub fn set_script(&self, script: impl FnMut(&Received, usize) -> Answer + Send + 'static) {
        *self.script.lock().expect("lock") = Box::new(script);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    /// Stops it.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}
