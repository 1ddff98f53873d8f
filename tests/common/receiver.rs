//! The local receiver every sink test posts to: a loopback axum server that records each
//! request and answers from a script, then with a default reply that can change while it runs.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;
use url::Url;

/// How the receiver answers one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 200 `ok`.
    Ok,
    Status(u16),
    /// 429 with `Retry-After: <seconds>`.
    RateLimited(u64),
    /// Never answers (an hour), beyond any sink timeout.
    Hang,
}

/// One request as it arrived, and what it was answered (0: never answered).
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub answered: u16,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A Slack message's `text`.
    pub fn slack_text(&self) -> String {
        self.json()["text"]
            .as_str()
            .expect("a Slack text")
            .to_owned()
    }
}

#[derive(Clone)]
struct ReceiverState {
    requests: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    otherwise: Arc<Mutex<Reply>>,
}

/// A loopback HTTP server recording every request; answers from its script first, then with
/// its default reply. Stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    state: ReceiverState,
    task: JoinHandle<()>,
}

async fn record(
    State(state): State<ReceiverState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*state.otherwise.lock().unwrap());
    let mut recorded = Recorded {
        path: uri.path().to_owned(),
        headers,
        body: body.to_vec(),
        answered: 0,
    };
    let response = match reply {
        Reply::Ok => (StatusCode::OK, "ok").into_response(),
        Reply::Status(code) => (StatusCode::from_u16(code).unwrap(), "no").into_response(),
        Reply::RateLimited(seconds) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", seconds.to_string())],
            "slow down",
        )
            .into_response(),
        Reply::Hang => {
            state.requests.lock().unwrap().push(recorded);
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return StatusCode::NO_CONTENT.into_response();
        }
    };
    recorded.answered = response.status().as_u16();
    state.requests.lock().unwrap().push(recorded);
    response
}

impl Receiver {
    /// On a free loopback port.
    pub async fn start(script: Vec<Reply>, otherwise: Reply) -> Receiver {
        Receiver::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), script, otherwise).await
    }

    /// On `addr` (a port a sink was already given, say).
    pub async fn start_on(addr: SocketAddr, script: Vec<Reply>, otherwise: Reply) -> Receiver {
        let state = ReceiverState {
            requests: Arc::default(),
            script: Arc::new(Mutex::new(script.into())),
            otherwise: Arc::new(Mutex::new(otherwise)),
        };
        let router = axum::Router::new()
            .fallback(record)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Receiver { addr, state, task }
    }

    /// From now on, answers requests the script does not cover with `reply`.
    pub fn answer(&self, reply: Reply) {
        *self.state.otherwise.lock().unwrap() = reply;
    }

    pub fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://{}{path}", self.addr)).unwrap()
    }

    /// Every request, in arrival order.
    pub fn all(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    /// Every request to `path`, in arrival order.
    pub fn requests(&self, path: &str) -> Vec<Recorded> {
        self.all()
            .into_iter()
            .filter(|request| request.path == path)
            .collect()
    }

    /// Requests to `path` it answered 2xx.
    pub fn delivered(&self, path: &str) -> Vec<Recorded> {
        self.requests(path)
            .into_iter()
            .filter(|request| (200..300).contains(&request.answered))
            .collect()
    }

    /// Waits until `path` has seen `count` requests (all answers), up to 10 s.
    pub async fn wait_for(&self, path: &str, count: usize) -> Vec<Recorded> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let requests = self.requests(path);
            if requests.len() >= count || Instant::now() > deadline {
                return requests;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
