//! `GET /metrics`: Prometheus text, every name prefixed `edgecl_`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edgecl::frames::Counts;
use edgecl::learner::Info;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::worker::Camera;

type Labels = Vec<(&'static str, &'static str)>;

/// Latency buckets from 1 ms to about 16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    frames_read: Counter,
    frames_dropped: Counter,
    frames_classified: Counter,
    frame_latency: Histogram,
    requests: Family<Labels, Counter>,
    request_latency: Family<Labels, Histogram, fn() -> Histogram>,
    classes: Gauge,
    state_bytes: Gauge,
    memory_bytes: Gauge,
    camera_up: Gauge,
    camera_restarts: Counter,
    seen_read: AtomicU64,
    seen_dropped: AtomicU64,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("edgecl");
        let m = Metrics {
            frames_read: Counter::default(),
            frames_dropped: Counter::default(),
            frames_classified: Counter::default(),
            frame_latency: latency_histogram(),
            requests: Family::default(),
            request_latency: Family::new_with_constructor(latency_histogram),
            classes: Gauge::default(),
            state_bytes: Gauge::default(),
            memory_bytes: Gauge::default(),
            camera_up: Gauge::default(),
            camera_restarts: Counter::default(),
            seen_read: AtomicU64::new(0),
            seen_dropped: AtomicU64::new(0),
            registry: Registry::default(),
        };
        registry.register(
            "frames_read",
            "Camera frames read from the source",
            m.frames_read.clone(),
        );
        registry.register(
            "frames_dropped",
            "Camera frames replaced by a newer one before the model got to them",
            m.frames_dropped.clone(),
        );
        registry.register(
            "frames_classified",
            "Camera frames classified",
            m.frames_classified.clone(),
        );
        registry.register(
            "frame_latency_seconds",
            "Capture-to-label time of classified camera frames",
            m.frame_latency.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP API requests by route and status",
            m.requests.clone(),
        );
        registry.register(
            "job_latency_seconds",
            "Time the model worker spent on a request (classify, learn)",
            m.request_latency.clone(),
        );
        registry.register("classes", "Classes in the state", m.classes.clone());
        registry.register(
            "state_bytes",
            "Size of the encoded state file",
            m.state_bytes.clone(),
        );
        registry.register(
            "memory_bytes",
            "Bytes of stored features (feature memory)",
            m.memory_bytes.clone(),
        );
        registry.register(
            "camera_up",
            "1 while the camera delivers frames",
            m.camera_up.clone(),
        );
        registry.register(
            "camera_restarts",
            "Times the camera ended, failed or stalled and was (to be) started again",
            m.camera_restarts.clone(),
        );
        Metrics { registry, ..m }
    }

    pub fn set_state(&self, info: &Info) {
        self.classes.set(info.classes.len() as i64);
        self.state_bytes.set(info.state_bytes as i64);
        self.memory_bytes.set(info.memory_bytes as i64);
    }

    pub fn set_camera(&self, camera: &Camera, counts: Option<Counts>) {
        self.camera_up.set(i64::from(*camera == Camera::Running));
        if let Some(c) = counts {
            self.frames(c);
        }
    }

    /// Brings the frame counters up to the source's cumulative counts.
    pub fn frames(&self, counts: Counts) {
        let read = self.seen_read.swap(counts.read, Ordering::Relaxed);
        self.frames_read.inc_by(counts.read.saturating_sub(read));
        let dropped = self.seen_dropped.swap(counts.dropped, Ordering::Relaxed);
        self.frames_dropped
            .inc_by(counts.dropped.saturating_sub(dropped));
    }

    pub fn frame_latency(&self, d: Duration) {
        self.frames_classified.inc();
        self.frame_latency.observe(d.as_secs_f64());
    }

    pub fn request_latency(&self, job: &'static str, d: Duration) {
        self.request_latency
            .get_or_create(&vec![("job", job)])
            .observe(d.as_secs_f64());
    }

    pub fn request(&self, route: &'static str, status: u16) {
        let status: &'static str = match status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests
            .get_or_create(&vec![("route", route), ("status", status)])
            .inc();
    }

    pub fn camera_restart(&self) {
        self.camera_restarts.inc();
    }

    pub fn text(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String does not fail");
        out
    }
}
