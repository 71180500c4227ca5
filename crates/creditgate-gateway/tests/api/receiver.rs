//! A webhook receiver for the tests: a small axum server on 127.0.0.1:0 that verifies each
//! delivery's `creditgate-signature` with its own HMAC-SHA256 (not the gateway's code), records
//! what it received, and answers as told: 200, 500, or not at all for a while (a hang).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Fail,
    /// Answers nothing for this long, then 200.
    Hang(Duration),
}

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub delivery_id: String,
    pub event_type: String,
    pub body: Value,
    /// The signature matched the secret over the raw body and the signed timestamp.
    pub verified: bool,
}

#[derive(Default)]
struct Inner {
    mode: Option<Mode>,
    secret: String,
    received: Vec<Received>,
    in_flight: usize,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    _task: Arc<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    pub async fn start(mode: Mode) -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            mode: Some(mode),
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            addr,
            inner,
            _task: Arc::new(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.inner.lock().unwrap().mode = Some(mode);
    }

    /// The endpoint's signing secret, as the gateway showed it once.
    pub fn set_secret(&self, secret: &str) {
        self.inner.lock().unwrap().secret = secret.to_owned();
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn in_flight(&self) -> usize {
        self.inner.lock().unwrap().in_flight
    }
}

/// Checks `t=<unix>,v1=<hex>` over `t + "." + body` with the secret.
pub fn verify(secret: &str, header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => v1.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    v1.contains(&expected)
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mode = {
        let mut inner = inner.lock().unwrap();
        let verified = verify(&inner.secret, &header("creditgate-signature"), &body);
        inner.received.push(Received {
            delivery_id: header("creditgate-delivery"),
            event_type: header("creditgate-event"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            verified,
        });
        inner.in_flight += 1;
        inner.mode.unwrap_or(Mode::Ok)
    };
    let status = match mode {
        Mode::Ok => StatusCode::OK,
        Mode::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Mode::Hang(wait) => {
            tokio::time::sleep(wait).await;
            StatusCode::OK
        }
    };
    inner.lock().unwrap().in_flight -= 1;
    status
}
