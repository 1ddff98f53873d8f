//! The HTTP server under real connections: gzip, slow and stalled clients, timeouts, h2c,
//! and the probe listener.

mod common;

use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cloudflare_aop_exporter::daemon;
use cloudflare_aop_exporter::metrics::testing::synthetic_snapshot;
use cloudflare_aop_exporter::server::{self, AppState, ConnectionLimits, ServeOptions};
use cloudflare_aop_exporter::simulator::{Scenario, Simulator};
use cloudflare_aop_exporter::state::SharedSnapshot;
use common::metrics_text::stable_metrics;
use common::process::free_addr;
use common::setup::Daemon;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::oneshot;

/// A guard against a hung test, not a performance bound.
const GUARD: Duration = Duration::from_secs(60);

/// The exporter's router over a synthetic snapshot of `zones` zones, served on loopback with
/// the default connection limits as `limit` changes them.
async fn serve(
    zones: usize,
    limit: impl FnOnce(&mut ConnectionLimits),
) -> (SocketAddr, oneshot::Sender<()>) {
    let mut limits = ConnectionLimits::default();
    limit(&mut limits);
    let snapshot = synthetic_snapshot(zones, 10, 3);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = server::router(AppState {
        snapshot: Arc::new(SharedSnapshot::new(snapshot)),
        metrics: stable_metrics(),
    });
    let options = ServeOptions {
        limits,
        ..ServeOptions::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server::serve(listener, router, options, async {
        let _ = stopped.await;
    }));
    (addr, stop)
}

async fn get(addr: SocketAddr, path: &str, accept_encoding: Option<&str>) -> reqwest::Response {
    let client = reqwest::Client::new();
    let mut request = client.get(format!("http://{addr}{path}"));
    if let Some(encoding) = accept_encoding {
        request = request.header("accept-encoding", encoding);
    }
    tokio::time::timeout(GUARD, request.send())
        .await
        .expect("no answer")
        .unwrap()
}

fn inflate(compressed: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(compressed)
        .read_to_string(&mut text)
        .unwrap();
    text
}

#[tokio::test]
async fn a_gzip_scrape_inflates_to_exactly_the_plain_body() {
    let (addr, _stop) = serve(20, |_| {}).await;
    let plain = get(addr, "/metrics", None).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(plain.headers()["vary"], "accept-encoding");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.text().await.unwrap();

    // What Prometheus sends.
    let gzip = get(addr, "/metrics", Some("gzip")).await;
    assert_eq!(gzip.status(), 200);
    assert_eq!(gzip.headers()["content-encoding"], "gzip");
    assert_eq!(
        gzip.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(gzip.headers()["vary"], "accept-encoding");
    let compressed = gzip.bytes().await.unwrap();
    assert!(
        compressed.len() * 5 < plain.len(),
        "{} of {}",
        compressed.len(),
        plain.len()
    );
    let inflated = inflate(&compressed);
    assert!(
        inflated == plain,
        "the inflated gzip body differs from the plain one"
    );
    assert!(plain.contains("cloudflare_aop_hostname_status{"));

    let refused = get(addr, "/metrics", Some("gzip;q=0, identity")).await;
    assert!(refused.headers().get("content-encoding").is_none());
    assert!(refused.text().await.unwrap() == plain);
}

/// Sends a plain `/metrics` request on a socket with a tiny receive buffer and never reads.
async fn stalled_scraper(addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: exporter\r\n\r\n")
        .await
        .unwrap();
    stream
}

/// A connection to `addr` that has sent `bytes` (raw, whatever the protocol says).
async fn send_raw(addr: SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// What `stream` receives until the server closes it (or the read fails); fails with `what`
/// after [`GUARD`].
async fn read_until_closed(stream: &mut tokio::net::TcpStream, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let _ = tokio::time::timeout(GUARD, stream.read_to_end(&mut received))
        .await
        .expect(what);
    received
}

#[tokio::test]
async fn clients_that_never_read_are_cut_off_and_hold_up_no_scrape() {
    // ~10 MB of text: more than loopback's socket buffers hold.
    let (addr, _stop) = serve(250, |limits| limits.write_timeout = Duration::from_secs(1)).await;
    let expected = get(addr, "/metrics", None).await.text().await.unwrap();
    assert!(expected.len() > 8_000_000, "{} bytes", expected.len());

    let mut stalled = Vec::new();
    for _ in 0..6 {
        stalled.push(stalled_scraper(addr).await);
    }
    // More stalled readers than renders run at once: scrapes still complete.
    for _ in 0..3 {
        let response = get(addr, "/metrics", Some("gzip")).await;
        assert_eq!(response.status(), 200);
        let body = tokio::time::timeout(GUARD, response.bytes())
            .await
            .expect("scrape body stalled")
            .unwrap();
        assert!(inflate(&body) == expected);
    }
    // Past the write timeout the stalled connections were closed: reading now gets only
    // what was buffered before the cut, never the whole body.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for mut stream in stalled {
        let received =
            read_until_closed(&mut stream, "a stalled connection was never closed").await;
        assert!(
            received.len() < expected.len(),
            "{} bytes received",
            received.len()
        );
    }
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let (addr, _stop) = serve(1, |limits| {
        limits.header_read_timeout = Duration::from_millis(500);
    })
    .await;
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut slow = send_raw(addr, b"GET /metrics HTTP/1.1\r\nHost: exp").await;
    for stream in [&mut idle, &mut slow] {
        let received = read_until_closed(stream, "the connection was held open").await;
        // Nothing or an error status, never a response to the unfinished request.
        assert!(
            received.is_empty() || received.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&received)
        );
    }
    // A keep-alive connection that goes idle after a response is closed too.
    let mut kept = send_raw(addr, b"GET /healthz HTTP/1.1\r\nHost: exporter\r\n\r\n").await;
    let received =
        read_until_closed(&mut kept, "the idle keep-alive connection was held open").await;
    assert!(received.starts_with(b"HTTP/1.1 200 OK"));
}

#[tokio::test]
async fn h2c_is_not_served() {
    let (addr, _stop) = serve(1, |_| {}).await;
    // The HTTP/2 connection preface with prior knowledge, then an empty SETTINGS frame.
    let mut stream = send_raw(
        addr,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    )
    .await;
    let received = read_until_closed(&mut stream, "the connection was held open").await;
    // An HTTP/2 server would answer with its SETTINGS frame (type 4 at byte 3).
    assert!(
        received.is_empty() || received.starts_with(b"HTTP/1.1 "),
        "{received:?}"
    );
}

#[tokio::test]
async fn the_probe_listener_serves_health_and_readiness_only() {
    let scenario = Scenario::scale(2, 1, 2);
    let sim = Simulator::start(scenario.clone()).await.unwrap();
    let mut settings =
        daemon::demo_settings(&scenario, sim.base_url(), "127.0.0.1:0".parse().unwrap());
    let state_dir = tempfile::tempdir().unwrap();
    settings.state.dir = state_dir.path().to_path_buf();
    settings.schedule.cron = "0 0 0 1 1 *".into();
    let probe_port = free_addr();
    settings.server.probe_listen = Some(probe_port);
    let daemon = Daemon::start(settings).await;
    let main = daemon.addr;

    let mut ready = false;
    for _ in 0..200 {
        if let Ok(Ok(response)) = tokio::time::timeout(
            Duration::from_secs(5),
            reqwest::get(format!("http://{probe_port}/readyz")),
        )
        .await
        {
            if response.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "/readyz on the probe listener never became 200");
    assert_eq!(get(probe_port, "/healthz", None).await.status(), 200);
    assert_eq!(get(probe_port, "/metrics", None).await.status(), 404);
    assert_eq!(
        get(probe_port, "/api/v1/snapshot", None).await.status(),
        404
    );
    assert_eq!(get(main, "/metrics", None).await.status(), 200);

    daemon.stop().await.unwrap();
    // Both listeners are closed after shutdown.
    assert!(tokio::net::TcpStream::connect(probe_port).await.is_err());
}
