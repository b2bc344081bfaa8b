//! The HTTP side: routes, the token check, and the JSON answers (shaped like the CLI's `--json`).
//!
//! Handlers never touch the model: they decode images on tokio's blocking pool and send a [`Job`] to
//! the worker over a bounded channel; a full channel is answered 503 at once. A write is answered
//! only after the worker has saved the state.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use edgecl::preprocess::Floor;
use image::DynamicImage;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};

use super::metrics::Metrics;
use super::worker::{Camera, Job, LiveLabel, Reply, Snapshot, MAX_LIVE_FRAMES};

/// Jobs that may wait for the worker; one more is answered 503.
pub const QUEUE: usize = 64;
/// Most nearest classes a request may ask for.
const MAX_TOP: usize = 100;

/// What every handler shares.
pub struct Shared {
    pub jobs: mpsc::SyncSender<Job>,
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    pub last: watch::Receiver<Option<Arc<LiveLabel>>>,
    pub jpeg: watch::Sender<Option<Bytes>>,
    pub metrics: Arc<Metrics>,
    pub alive: Arc<AtomicBool>,
    pub token: Option<String>,
    pub runtime: Value,
    pub has_camera: bool,
    /// The model's decode floor: an uploaded photo is decoded no larger than the model needs.
    pub floor: edgecl::preprocess::Floor,
    /// Largest request body, in bytes.
    pub max_body: usize,
}

type S = State<Arc<Shared>>;

pub fn router(shared: Shared) -> Router {
    let max_body = shared.max_body;
    let shared = Arc::new(shared);
    Router::new()
        .route("/", get(page))
        .route("/api/info", get(info))
        .route("/api/classes", get(classes))
        .route("/api/classify", post(classify))
        .route("/api/classes/{name}/captures", post(captures))
        .route("/api/classes/{name}", delete(forget))
        .route("/api/classes/{name}/rename", post(rename))
        .route("/api/merge", post(merge))
        .route("/api/events", get(events))
        .route("/api/stream.mjpg", get(stream))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&shared), guard))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(shared)
}

/// A JSON error answer: `{"error": "..."}` with its status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn bad(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl From<edgecl::Error> for ApiError {
    fn from(e: edgecl::Error) -> ApiError {
        use edgecl::Error as E;
        let status = match &e {
            E::UnknownClass(_) => StatusCode::NOT_FOUND,
            E::Invalid(_) | E::Dimension { .. } | E::Budget { .. } | E::Image { .. } => {
                StatusCode::BAD_REQUEST
            }
            E::Locked { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> ApiError {
        ApiError::new(e.status(), e.body_text())
    }
}

/// A JSON request body, whatever its Content-Type says (`curl -d` sends a form type): malformed JSON is
/// 400, well-formed JSON of the wrong shape 422.
fn json_body<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = body?;
    serde_json::from_slice(&body).map_err(|e| {
        let status = match e.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, format!("request body: {e}"))
    })
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::new(e.status(), e.body_text())
    }
}

type ApiResult<T> = Result<T, ApiError>;

impl Shared {
    /// Sends a job to the worker and waits for its answer.
    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> ApiResult<T> {
        let (tx, rx) = oneshot::channel();
        self.jobs.try_send(job(tx)).map_err(|e| match e {
            mpsc::TrySendError::Full(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("busy: {QUEUE} requests are waiting for the model; try again"),
            ),
            mpsc::TrySendError::Disconnected(_) => worker_down(),
        })?;
        Ok(rx.await.map_err(|_| worker_down())??)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshot.borrow())
    }
}

fn worker_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the model worker has stopped; see the server's log",
    )
}

/// Routes by their pattern, for the request counter's label.
fn route_name(path: &str) -> &'static str {
    const ROUTES: &[&str] = &[
        "/",
        "/api/info",
        "/api/classes",
        "/api/classify",
        "/api/classes/{name}/captures",
        "/api/classes/{name}",
        "/api/classes/{name}/rename",
        "/api/merge",
        "/api/events",
        "/api/stream.mjpg",
        "/metrics",
        "/healthz",
    ];
    ROUTES
        .iter()
        .find(|r| **r == path)
        .copied()
        .unwrap_or("other")
}

/// The token check (every method but GET and HEAD, when a token is set) and the request counter.
async fn guard(State(s): S, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", |p| route_name(p.as_str()));
    let reads = req.method() == Method::GET || req.method() == Method::HEAD;
    let authorized = match &s.token {
        Some(token) if !reads => req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|g| same(g.trim().as_bytes(), token.as_bytes())),
        _ => true,
    };
    let response = if !authorized {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "this server needs its token: Authorization: Bearer TOKEN",
        )
        .into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("valid header"),
        );
        r
    } else if declared_length(&req).is_some_and(|n| n > s.max_body as u64) {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than this server's --max-body {} bytes",
                s.max_body
            ),
        )
        .into_response()
    } else {
        next.run(req).await
    };
    s.metrics.request(route, response.status().as_u16());
    response
}

/// The body length a request declares (`Content-Length`): one over the limit is refused from the
/// headers alone, before the client has sent the body (a chunked body is cut at the limit as it is read).
fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn info(State(s): S) -> Json<Value> {
    let snap = s.snapshot();
    let last = s.last.borrow().clone();
    let last = last.as_deref();
    Json(json!({
        "state": snap.state, "camera": snap.camera, "runtime": s.runtime, "last": last,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn classes(State(s): S) -> Json<Value> {
    Json(json!({ "classes": s.snapshot().state.classes }))
}

/// Decodes a request body as one image, off the async runtime, no larger than the model needs (a phone's
/// 12-megapixel photo is decoded at 1/8 scale).
async fn decode(body: Bytes, floor: Floor) -> ApiResult<DynamicImage> {
    if body.is_empty() {
        return Err(ApiError::bad(
            "the request body must be one image (JPEG, PNG, BMP, PNM)",
        ));
    }
    tokio::task::spawn_blocking(move || edgecl::preprocess::decode_scaled(&body, floor))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| ApiError::bad(format!("cannot decode the image: {e}")))
}

#[derive(Deserialize)]
struct TopQuery {
    top: Option<usize>,
}

async fn classify(
    State(s): S,
    query: Result<Query<TopQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let top = query?.top.unwrap_or(3);
    if !(1..=MAX_TOP).contains(&top) {
        return Err(ApiError::bad(format!("top must be 1 to {MAX_TOP}")));
    }
    let image = decode(body?, s.floor).await?;
    let started = Instant::now();
    let p = s.ask(|reply| Job::Classify { image, top, reply }).await?;
    Ok(Json(json!({
        "label": p.label, "unknown": p.unknown, "top": p.top,
        "latency_ms": started.elapsed().as_secs_f64() * 1e3,
    })))
}

#[derive(Deserialize)]
struct CaptureQuery {
    frames: Option<usize>,
}

async fn captures(
    State(s): S,
    Path(name): Path<String>,
    query: Result<Query<CaptureQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let class = edgecl::class_name::normalise(&name)?;
    let body = body?;
    let (learned, captures) = match query?.frames {
        Some(_) if !body.is_empty() => {
            return Err(ApiError::bad(
                "send either an image as the body or ?frames=N, not both",
            ))
        }
        Some(n) if !(1..=MAX_LIVE_FRAMES).contains(&n) => {
            return Err(ApiError::bad(format!(
                "frames must be 1 to {MAX_LIVE_FRAMES}"
            )))
        }
        Some(_) if !s.has_camera => {
            return Err(ApiError::bad(
                "this server has no camera (--source): send the capture as the request body",
            ))
        }
        Some(frames) => {
            let c = class.clone();
            let captures = s
                .ask(|reply| Job::LearnLive {
                    class: c,
                    frames,
                    reply,
                })
                .await?;
            (frames, captures)
        }
        None => {
            let images = vec![decode(body, s.floor).await?];
            let c = class.clone();
            let captures = s
                .ask(|reply| Job::Learn {
                    class: c,
                    images,
                    reply,
                })
                .await?;
            (1, captures)
        }
    };
    let snap = s.snapshot();
    Ok(Json(json!({
        "class": class, "learned": learned, "captures": captures, "stored": true,
        "classes": snap.state.classes.len(), "state_bytes": snap.state.state_bytes,
        "memory_bytes": snap.state.memory_bytes, "memory_budget": snap.state.memory_budget,
    })))
}

fn class_names(s: &Shared) -> Vec<String> {
    s.snapshot()
        .state
        .classes
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

async fn forget(State(s): S, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let class = edgecl::class_name::normalise(&name)?;
    let c = class.clone();
    s.ask(|reply| Job::Forget { class: c, reply }).await?;
    Ok(Json(json!({ "forgot": class, "classes": class_names(&s) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RenameBody {
    to: String,
}

async fn rename(
    State(s): S,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let body: RenameBody = json_body(body)?;
    let to = edgecl::class_name::normalise(&body.to)?;
    let from = edgecl::class_name::normalise(&name)?;
    let (f, t) = (from.clone(), to.clone());
    s.ask(|reply| Job::Rename {
        from: f,
        to: t,
        reply,
    })
    .await?;
    Ok(Json(
        json!({ "renamed": from, "to": to, "classes": class_names(&s) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    from: Vec<String>,
    into: String,
}

async fn merge(State(s): S, body: Result<Bytes, BytesRejection>) -> ApiResult<Json<Value>> {
    let body: MergeBody = json_body(body)?;
    if body.from.is_empty() || body.from.len() > 1000 {
        return Err(ApiError::bad("from must name 1 to 1000 classes"));
    }
    let into = edgecl::class_name::normalise(&body.into)?;
    let from = body
        .from
        .iter()
        .map(|n| edgecl::class_name::normalise(n))
        .collect::<edgecl::Result<Vec<_>>>()?;
    let (f, i) = (from.clone(), into.clone());
    s.ask(|reply| Job::Merge {
        from: f,
        into: i,
        reply,
    })
    .await?;
    let snap = s.snapshot();
    let captures = snap
        .state
        .classes
        .iter()
        .find(|c| c.name == into)
        .map_or(0, |c| c.captures);
    Ok(Json(json!({
        "merged": from, "into": into, "captures": captures, "classes": class_names(&s),
    })))
}

/// Live predictions as Server-Sent Events (`data:` is one JSON object per classified frame; a slow
/// client skips to the newest).
async fn events(State(s): S) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = WatchStream::from_changes(s.last.clone()).filter_map(|label| {
        let label = label?;
        Event::default().json_data(&*label).ok().map(Ok)
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The live camera view: JPEG frames as `multipart/x-mixed-replace`, which browsers show in an `<img>`.
async fn stream(State(s): S) -> ApiResult<Response> {
    if !s.has_camera {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "this server has no camera (--source)",
        ));
    }
    let frames = WatchStream::new(s.jpeg.subscribe()).filter_map(|jpeg| {
        let jpeg = jpeg?;
        let mut part = Vec::with_capacity(jpeg.len() + 96);
        part.extend_from_slice(
            format!(
                "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                jpeg.len()
            )
            .as_bytes(),
        );
        part.extend_from_slice(&jpeg);
        part.extend_from_slice(b"\r\n");
        Some(Ok::<_, Infallible>(Bytes::from(part)))
    });
    Ok(Response::builder()
        .header(
            header::CONTENT_TYPE,
            "multipart/x-mixed-replace; boundary=frame",
        )
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(frames))
        .expect("valid response"))
}

async fn metrics(State(s): S) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.text(),
    )
}

/// 200 when the worker runs and the camera (if any) delivers; 503 with the reason otherwise.
async fn healthz(State(s): S) -> (StatusCode, Json<Value>) {
    let camera = s.snapshot().camera.clone();
    let worker = s.alive.load(Ordering::SeqCst);
    let camera_ok = matches!(camera, Camera::None | Camera::Running | Camera::Starting);
    let status = if worker && camera_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if status == StatusCode::OK { "ok" } else { "degraded" },
            "worker": if worker { "running" } else { "stopped" },
            "camera": camera,
        })),
    )
}
