//! `/metrics` bodies: one render per snapshot, compressed once, shared by every scrape.
//!
//! At full scale (1,000 zones, 10,000 hostnames) the text is ~47 MB. A render runs on a
//! blocking thread and compresses as it goes (gzip at level 1, a few MB); its compressed chunks
//! go into a buffer shared by every scrape that arrives while it runs (or within
//! [`SHARE_WINDOW`] of its start) for the same snapshot. Each response streams from that buffer
//! at its own pace: a gzip client gets the bytes as they are, a plain one gets them inflated on
//! the fly. So the render never waits on a socket, a slow or stalled reader holds only its place
//! in a buffer that is freed when the last reader is done, and memory does not grow with the
//! number of scrapers.

use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use flate2::write::{DeflateDecoder, DeflateEncoder};
use flate2::{Compression, Crc};
use tokio::sync::{Semaphore, watch};

use crate::metrics::{Metrics, RENDER_CHUNK_LEN};
use crate::state::Snapshot;

/// The Prometheus text exposition format's content type (Prometheus 3 insists on it exactly).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A scrape arriving this long after a render of the same snapshot started starts a new one,
/// so the exporter's own counters (and `process_*`) stay fresh under back-to-back scrapers.
const SHARE_WINDOW: Duration = Duration::from_secs(1);

/// Renders running at once (each is CPU only: it never waits on a client).
const MAX_CONCURRENT_RENDERS: usize = 2;

/// Compressed bytes collected before they are published to readers.
const PUBLISH_LEN: usize = 64 * 1024;

/// Compressed bytes a plain reader inflates per step, and the plain bytes it sends per chunk.
/// (Small, so one step's output, up to ~20 times larger, cannot overshoot a chunk by much.)
const INFLATE_STEP: usize = 4 * 1024;
const PLAIN_CHUNK_LEN: usize = 64 * 1024;

/// The gzip member header (RFC 1952): deflate, no name or timestamp, "fastest", unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

/// Whether `Accept-Encoding` accepts gzip (`gzip`, `x-gzip` or `*` with a non-zero q-value,
/// `gzip;q=0` refusing it even when `*` is accepted).
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(text) = value.to_str() else { continue };
        for item in text.split(',') {
            let mut parts = item.split(';');
            let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let quality = parts
                .find_map(|parameter| {
                    let (name, value) = parameter.split_once('=')?;
                    name.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| value.trim().parse::<f32>().unwrap_or(0.0))
                })
                .unwrap_or(1.0);
            match coding.as_str() {
                "gzip" | "x-gzip" => gzip = Some(quality > 0.0),
                "*" => any = Some(quality > 0.0),
                _ => {}
            }
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// The `/metrics` handler's state: the metrics, the render in progress, the render limit.
pub struct Scrapes {
    metrics: Arc<Metrics>,
    /// The latest render, while anyone still reads it.
    latest: Mutex<Weak<SharedRender>>,
    renders: Arc<Semaphore>,
    /// [`SHARE_WINDOW`] (tests use a longer one).
    share_window: Duration,
}

impl Scrapes {
    /// Scrapes of `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Scrapes {
        Scrapes {
            metrics,
            latest: Mutex::new(Weak::new()),
            renders: Arc::new(Semaphore::new(MAX_CONCURRENT_RENDERS)),
            share_window: SHARE_WINDOW,
        }
    }

    /// The `/metrics` response for `snapshot`: gzip when `gzip`, else plain text.
    pub fn response(&self, snapshot: Arc<Snapshot>, gzip: bool) -> Response {
        let shared = self.render_for(snapshot);
        let reader = Reader {
            progress: shared.progress.subscribe(),
            next: 0,
            _render: shared,
        };
        let body = if gzip {
            Body::from_stream(gzip_stream(reader))
        } else {
            Body::from_stream(plain_stream(reader))
        };
        let mut response = body.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(METRICS_CONTENT_TYPE),
        );
        headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if gzip {
            headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    }

    /// Joins the latest render when it is of `snapshot` and recent enough, else starts one.
    fn render_for(&self, snapshot: Arc<Snapshot>) -> Arc<SharedRender> {
        let of = SnapshotId::of(&snapshot);
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(render) = latest.upgrade() {
            if render.of == of
                && (render.started.elapsed() < self.share_window || !render.progress.borrow().done)
            {
                return render;
            }
        }
        let render = Arc::new(SharedRender {
            of,
            started: Instant::now(),
            progress: watch::Sender::new(Progress::default()),
        });
        *latest = Arc::downgrade(&render);
        drop(latest);
        let metrics = self.metrics.clone();
        let renders = self.renders.clone();
        let running = render.clone();
        tokio::spawn(async move {
            // Never closed; a failure only means the render goes ahead without a permit.
            let permit = renders.acquire_owned().await.ok();
            let rendered = tokio::task::spawn_blocking(move || {
                let _permit = permit;
                running.run(&metrics, &snapshot);
            })
            .await;
            if rendered.is_err() {
                tracing::error!("rendering /metrics failed");
            }
        });
        render
    }
}

/// Which snapshot a render is of, without keeping it alive: its address and generation
/// (the generation tells a new snapshot from an old one freed at the same address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SnapshotId(usize, u64);

impl SnapshotId {
    fn of(snapshot: &Arc<Snapshot>) -> SnapshotId {
        SnapshotId(Arc::as_ptr(snapshot).addr(), snapshot.generation)
    }
}

/// One render of one snapshot, shared by the scrapes that read it (each holds it until its
/// body is sent). The snapshot itself is held only while rendering.
struct SharedRender {
    of: SnapshotId,
    started: Instant,
    progress: watch::Sender<Progress>,
}

/// What a render has produced so far.
#[derive(Default)]
struct Progress {
    /// The raw deflate stream, in the order produced.
    chunks: Vec<Bytes>,
    done: bool,
    /// The render ended without its whole text (readers end with an error, not a short body).
    failed: bool,
    /// CRC-32 and length of the whole plain text, for the gzip trailer, once done.
    crc: u32,
    plain_len: u32,
}

impl SharedRender {
    /// Renders the text, compressing and publishing it as it goes.
    fn run(&self, metrics: &Metrics, snapshot: &Snapshot) {
        let mut finished = Finished {
            progress: &self.progress,
            ok: false,
        };
        let trailer = render_deflate(metrics, snapshot, &mut |compressed| {
            self.publish(compressed);
        });
        if let Some((crc, plain_len)) = trailer {
            self.progress.send_modify(|progress| {
                progress.crc = crc;
                progress.plain_len = plain_len;
            });
            finished.ok = true;
        } else {
            tracing::error!("compressing /metrics failed");
        }
    }

    fn publish(&self, compressed: Vec<u8>) {
        if !compressed.is_empty() {
            self.progress
                .send_modify(|progress| progress.chunks.push(Bytes::from(compressed)));
        }
    }
}

/// The `/metrics` text of `snapshot` as a raw deflate stream (level 1), handed to `emit` in
/// pieces of about 64 KiB as it is rendered; returns the CRC-32 and length (mod 2³²) of the
/// text for a gzip trailer, or `None` if compressing failed. What every `/metrics` response
/// is made from (public for the benchmarks).
pub fn render_deflate(
    metrics: &Metrics,
    snapshot: &Snapshot,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Option<(u32, u32)> {
    let mut encoder = DeflateEncoder::new(Vec::with_capacity(2 * PUBLISH_LEN), Compression::fast());
    let mut crc = Crc::new();
    let mut write_failed = false;
    metrics.render_chunks(snapshot, RENDER_CHUNK_LEN, |chunk| {
        crc.update(chunk.as_bytes());
        // Writing into a Vec cannot fail; if it ever did, the body must not look complete.
        write_failed |= encoder.write_all(chunk.as_bytes()).is_err();
        if encoder.get_ref().len() >= PUBLISH_LEN {
            // A copy of exactly its length; the buffer is reused.
            emit(encoder.get_ref().clone());
            encoder.get_mut().clear();
        }
    });
    let rest = encoder.finish().ok().filter(|_| !write_failed)?;
    if !rest.is_empty() {
        emit(rest);
    }
    Some((crc.sum(), crc.amount()))
}

/// Marks the render done when it ends, also by a panic, so no reader waits for ever.
struct Finished<'a> {
    progress: &'a watch::Sender<Progress>,
    ok: bool,
}

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        let ok = self.ok;
        self.progress.send_modify(|progress| {
            progress.done = true;
            progress.failed = !ok;
        });
    }
}

/// One response's position in a shared render.
struct Reader {
    progress: watch::Receiver<Progress>,
    next: usize,
    /// Keeps the render joinable by later scrapes while this one reads it.
    _render: Arc<SharedRender>,
}

/// What a reader gets next.
enum Next {
    Chunk(Bytes),
    /// The whole deflate stream was read; the gzip trailer values.
    End {
        crc: u32,
        plain_len: u32,
    },
}

impl Reader {
    async fn next(&mut self) -> Result<Next, std::io::Error> {
        loop {
            {
                let progress = self.progress.borrow_and_update();
                if let Some(chunk) = progress.chunks.get(self.next) {
                    self.next += 1;
                    return Ok(Next::Chunk(chunk.clone()));
                }
                if progress.done {
                    if progress.failed {
                        return Err(std::io::Error::other("rendering /metrics failed"));
                    }
                    return Ok(Next::End {
                        crc: progress.crc,
                        plain_len: progress.plain_len,
                    });
                }
            }
            if self.progress.changed().await.is_err() {
                return Err(std::io::Error::other("rendering /metrics stopped"));
            }
        }
    }
}

/// The gzip body: header, the shared deflate chunks, trailer.
fn gzip_stream(
    reader: Reader,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let header = Bytes::from_static(&GZIP_HEADER);
    futures::stream::unfold(Some((reader, Some(header))), |state| async move {
        let (mut reader, header) = state?;
        if let Some(header) = header {
            return Some((Ok(header), Some((reader, None))));
        }
        match reader.next().await {
            Ok(Next::Chunk(chunk)) => Some((Ok(chunk), Some((reader, None)))),
            Ok(Next::End { crc, plain_len }) => {
                let mut trailer = Vec::with_capacity(8);
                trailer.extend_from_slice(&crc.to_le_bytes());
                trailer.extend_from_slice(&plain_len.to_le_bytes());
                Some((Ok(Bytes::from(trailer)), None))
            }
            Err(error) => Some((Err(error), None)),
        }
    })
}

/// A plain reader's inflater and the compressed bytes it has not fed it yet.
struct Inflating {
    reader: Reader,
    decoder: DeflateDecoder<Vec<u8>>,
    pending: Bytes,
    ended: bool,
}

/// The plain body: the shared deflate chunks, inflated a bounded step at a time.
fn plain_stream(
    reader: Reader,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    let state = Inflating {
        reader,
        decoder: DeflateDecoder::new(Vec::with_capacity(PLAIN_CHUNK_LEN + INFLATE_STEP * 8)),
        pending: Bytes::new(),
        ended: false,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            if state.decoder.get_ref().len() >= PLAIN_CHUNK_LEN
                || (state.ended && state.pending.is_empty())
            {
                if state.ended && state.pending.is_empty() {
                    if let Err(error) = state.decoder.try_finish() {
                        return Some((Err(error), None));
                    }
                }
                // A copy of exactly its length; the decoder's buffer is reused.
                let plain = Bytes::copy_from_slice(state.decoder.get_ref());
                state.decoder.get_mut().clear();
                let last = state.ended && state.pending.is_empty();
                if plain.is_empty() && last {
                    return None;
                }
                return Some((Ok(plain), (!last).then_some(state)));
            }
            if state.pending.is_empty() {
                match state.reader.next().await {
                    Ok(Next::Chunk(chunk)) => state.pending = chunk,
                    Ok(Next::End { .. }) => state.ended = true,
                    Err(error) => return Some((Err(error), None)),
                }
                continue;
            }
            let step = state
                .pending
                .split_to(state.pending.len().min(INFLATE_STEP));
            if let Err(error) = state.decoder.write_all(&step) {
                return Some((Err(error), None));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use futures::StreamExt as _;

    use super::*;
    use crate::metrics::MetricsOptions;
    use crate::metrics::testing::synthetic_snapshot;

    fn headers(accept_encoding: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in accept_encoding {
            headers.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn gzip_is_chosen_only_when_accepted() {
        for accepted in [
            &["gzip"][..],
            &["gzip, deflate, br"],
            &["br;q=1.0, GZIP;q=0.5"],
            &["x-gzip"],
            &["*"],
            &["identity", "gzip"],
            // What Prometheus sends.
            &["gzip"],
        ] {
            assert!(accepts_gzip(&headers(accepted)), "{accepted:?}");
        }
        for refused in [
            &[][..],
            &["identity"],
            &["gzip;q=0"],
            &["*, gzip;q=0"],
            &["br, deflate"],
            &["*;q=0"],
            &["gzip; q=0.000"],
        ] {
            assert!(!accepts_gzip(&headers(refused)), "{refused:?}");
        }
    }

    async fn body_of(response: Response) -> Vec<u8> {
        let mut stream = response.into_body().into_data_stream();
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.unwrap());
        }
        body
    }

    fn scrapes() -> (Scrapes, Arc<Metrics>) {
        let metrics = Arc::new(
            Metrics::with_options(MetricsOptions {
                // Their values change between two renders.
                exclude_families: crate::metrics::family_names()
                    .filter(|name| name.starts_with("process_"))
                    .map(str::to_owned)
                    .collect(),
                ..MetricsOptions::default()
            })
            .unwrap(),
        );
        (Scrapes::new(metrics.clone()), metrics)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gzip_and_plain_bodies_are_the_rendered_text() {
        let (scrapes, metrics) = scrapes();
        let snapshot = Arc::new(synthetic_snapshot(30, 10, 3));
        let expected = metrics.render(&snapshot);
        assert!(
            expected.len() > 1_000_000,
            "large enough to span many chunks"
        );

        let gzip = scrapes.response(snapshot.clone(), true);
        assert_eq!(gzip.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(gzip.headers()[header::CONTENT_TYPE], METRICS_CONTENT_TYPE);
        assert_eq!(gzip.headers()[header::VARY], "accept-encoding");
        let compressed = body_of(gzip).await;
        assert!(
            compressed.len() * 5 < expected.len(),
            "{} bytes",
            compressed.len()
        );
        let mut inflated = String::new();
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_string(&mut inflated)
            .unwrap();
        assert!(inflated == expected, "gzip body differs from the text");

        let plain = scrapes.response(snapshot, false);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(plain.headers()[header::CONTENT_TYPE], METRICS_CONTENT_TYPE);
        assert_eq!(plain.headers()[header::VARY], "accept-encoding");
        let plain = body_of(plain).await;
        assert!(
            plain == expected.as_bytes(),
            "plain body differs from the text"
        );
    }

    #[tokio::test]
    async fn concurrent_scrapes_of_one_snapshot_share_one_render() {
        let (mut scrapes, _) = scrapes();
        scrapes.share_window = Duration::from_secs(3600);
        let snapshot = Arc::new(synthetic_snapshot(3, 2, 2));
        let first = scrapes.render_for(snapshot.clone());
        let second = scrapes.render_for(snapshot.clone());
        assert!(Arc::ptr_eq(&first, &second));
        // Still shared once finished (within the share window), while someone reads it.
        let mut done = first.progress.subscribe();
        let _ = done.wait_for(|progress| progress.done).await;
        assert!(Arc::ptr_eq(&first, &scrapes.render_for(snapshot.clone())));
        // A new snapshot (the next cycle) gets its own render.
        let newer = Arc::new(synthetic_snapshot(3, 2, 2));
        let third = scrapes.render_for(newer.clone());
        assert!(!Arc::ptr_eq(&first, &third));
        assert!(Arc::ptr_eq(&third, &scrapes.render_for(newer)));
        // Once nobody reads a render any more, it is freed, not cached.
        drop((first, second, third));
        tokio::task::yield_now().await;
        let mut waited = 0;
        while scrapes.latest.lock().unwrap().upgrade().is_some() && waited < 1000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            waited += 1;
        }
        assert!(scrapes.latest.lock().unwrap().upgrade().is_none());
    }
}
