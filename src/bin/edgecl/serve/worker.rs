//! The one thread that owns the backbone and the state ([`Session`]): it answers the HTTP handlers'
//! jobs and, between them, classifies the newest camera frame.
//!
//! Jobs go first; with a camera the worker waits for a frame at most [`FRAME_WAIT`] before it looks
//! for jobs again, so a request waits at most that long behind a quiet camera, and a frame waits
//! behind at most one job. Every write (learn, forget, rename, merge) goes through
//! [`Session::edit`]: under the state's lock, from the state on disk, saved before the job answers.
//! A camera that ends or fails is restarted with a growing pause (stdin cannot be); one that sends
//! nothing for the stall time is reported as stalled (and a GStreamer camera restarted), never waited on
//! for ever. A folder source is never called stalled: it may rightly stay quiet for hours.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use edgecl::frames::{self, Frame, Latest, Next};
use edgecl::learner::{Info, Prediction};
use edgecl::session::Session;
use image::DynamicImage;
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use super::metrics::Metrics;

/// Longest a job waits behind a camera that has no new frame.
const FRAME_WAIT: Duration = Duration::from_millis(20);
/// How often the state file is checked for another process's save.
const RELOAD_EVERY: Duration = Duration::from_millis(500);
/// Most frames one `?frames=N` capture takes.
pub const MAX_LIVE_FRAMES: usize = 100;

pub type Reply<T> = oneshot::Sender<edgecl::Result<T>>;

/// What the HTTP handlers ask of the worker.
pub enum Job {
    Classify {
        image: DynamicImage,
        top: usize,
        reply: Reply<Prediction>,
    },
    /// Learn captures sent in the request.
    Learn {
        class: String,
        images: Vec<DynamicImage>,
        reply: Reply<u64>,
    },
    /// Learn the next `frames` camera frames.
    LearnLive {
        class: String,
        frames: usize,
        reply: Reply<u64>,
    },
    Forget {
        class: String,
        reply: Reply<()>,
    },
    Rename {
        from: String,
        to: String,
        reply: Reply<()>,
    },
    Merge {
        from: Vec<String>,
        into: String,
        reply: Reply<()>,
    },
}

/// The camera's condition, as `/healthz`, `/api/info` and the page show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Camera {
    /// No `--source`.
    None,
    Starting,
    Running,
    /// No frame for the stall time.
    Stalled {
        seconds: f64,
    },
    /// Ended or failed; `retry_in` seconds until the next start (none for stdin, which cannot restart).
    Down {
        message: String,
        retry_in: Option<f64>,
    },
}

/// One classified camera frame, as `/api/events` sends it.
#[derive(Debug, Clone, Serialize)]
pub struct LiveLabel {
    pub frame: u64,
    #[serde(flatten)]
    pub prediction: Prediction,
    pub latency_ms: f64,
    pub dropped: u64,
}

/// What the worker publishes for readers that need not wait for it.
#[derive(Clone, Serialize)]
pub struct Snapshot {
    pub state: Info,
    pub camera: Camera,
}

/// The worker's outputs, shared with the handlers.
pub struct Outputs {
    pub snapshot: watch::Sender<Arc<Snapshot>>,
    /// The newest live prediction (the SSE stream: a slow client skips to the newest, never lags).
    pub last: watch::Sender<Option<Arc<LiveLabel>>>,
    /// The newest frame as JPEG, encoded only while someone watches `/api/stream.mjpg`.
    pub jpeg: watch::Sender<Option<Bytes>>,
    pub metrics: Arc<Metrics>,
    /// Cleared when the worker thread ends (a panic or a lost model): `/healthz` then says so.
    pub alive: Arc<AtomicBool>,
}

pub struct Settings {
    pub source: Option<String>,
    pub top: usize,
    pub stall: Duration,
    pub lock_timeout: Duration,
}

/// A camera source and its restarts.
struct Feed {
    spec: String,
    /// The model's decode floor: JPEG frames are decoded no larger than the model needs.
    floor: edgecl::preprocess::Floor,
    latest: Option<Latest>,
    last_frame: Instant,
    retry_at: Option<Instant>,
    backoff: Duration,
    /// stdin cannot be opened again; the others can.
    restartable: bool,
    /// A folder may rightly stay quiet for hours (a motion camera): it is never called stalled.
    stalls: bool,
    /// Frames read and dropped by earlier runs of the source (the counters restart with it).
    base: frames::Counts,
}

impl Feed {
    fn new(spec: &str, floor: edgecl::preprocess::Floor) -> Feed {
        Feed {
            spec: spec.to_string(),
            floor,
            latest: None,
            last_frame: Instant::now(),
            retry_at: Some(Instant::now()),
            backoff: Duration::from_secs(1),
            restartable: !(spec == "stdin" || spec == "-" || spec.starts_with("stdin:")),
            stalls: !spec.starts_with("dir:"),
            base: frames::Counts::default(),
        }
    }

    fn counts(&self) -> frames::Counts {
        let now = self.latest.as_ref().map(Latest::counts).unwrap_or_default();
        frames::Counts {
            read: self.base.read + now.read,
            dropped: self.base.dropped + now.dropped,
        }
    }

    fn down(&mut self, message: String) -> Camera {
        self.base = self.counts();
        self.latest = None;
        if !self.restartable {
            self.retry_at = None;
            return Camera::Down {
                message,
                retry_in: None,
            };
        }
        self.retry_at = Some(Instant::now() + self.backoff);
        let retry_in = Some(self.backoff.as_secs_f64());
        self.backoff = (self.backoff * 2).min(Duration::from_secs(30));
        Camera::Down { message, retry_in }
    }

    /// Starts the source when it is due; an error is the reason it is down.
    fn ensure_started(&mut self) -> Option<Result<(), String>> {
        if self.latest.is_some() || self.retry_at.is_none_or(|t| Instant::now() < t) {
            return None;
        }
        Some(match frames::open(&self.spec, self.floor) {
            Ok(source) => {
                self.latest = Some(Latest::spawn(source));
                self.last_frame = Instant::now();
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        })
    }
}

pub struct Worker {
    session: Session,
    jobs: mpsc::Receiver<Job>,
    out: Outputs,
    settings: Settings,
    feed: Option<Feed>,
    camera: Camera,
    last_reload: Instant,
    /// Reused JPEG buffer for the live view.
    jpeg_buf: Vec<u8>,
}

impl Worker {
    pub fn new(
        session: Session,
        jobs: mpsc::Receiver<Job>,
        out: Outputs,
        settings: Settings,
    ) -> Worker {
        let floor = session.embedder().floor();
        let feed = settings
            .source
            .as_deref()
            .map(|spec| Feed::new(spec, floor));
        let camera = if feed.is_some() {
            Camera::Starting
        } else {
            Camera::None
        };
        let mut w = Worker {
            session,
            jobs,
            out,
            settings,
            feed,
            camera,
            last_reload: Instant::now(),
            jpeg_buf: Vec::new(),
        };
        w.publish();
        w
    }

    fn snapshot_now(&self) -> Snapshot {
        Snapshot {
            state: self.session.learner().info(),
            camera: self.camera.clone(),
        }
    }

    fn publish(&mut self) {
        let snap = self.snapshot_now();
        self.out.metrics.set_state(&snap.state);
        self.out
            .metrics
            .set_camera(&snap.camera, self.feed.as_ref().map(Feed::counts));
        self.out.snapshot.send_replace(Arc::new(snap));
    }

    /// Runs until every job sender is gone (the server shut down).
    pub fn run(mut self) {
        let alive = Arc::clone(&self.out.alive);
        let _guard = AliveGuard(alive);
        loop {
            match self.jobs.try_recv() {
                Ok(job) => {
                    self.handle(job);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            self.reload_if_due();
            if self.feed.is_none() {
                match self.jobs.recv_timeout(RELOAD_EVERY) {
                    Ok(job) => self.handle(job),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                continue;
            }
            match self.next_frame(FRAME_WAIT) {
                Some(frame) => self.live(frame),
                None if self.feed.as_ref().is_some_and(|f| f.latest.is_none()) => {
                    // The camera is down: wait for jobs instead of spinning.
                    match self.jobs.recv_timeout(Duration::from_millis(200)) {
                        Ok(job) => self.handle(job),
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => {}
            }
        }
    }

    fn reload_if_due(&mut self) {
        if self.last_reload.elapsed() < RELOAD_EVERY {
            return;
        }
        self.last_reload = Instant::now();
        match self.session.reload_if_changed() {
            Ok(true) => self.publish(),
            Ok(false) => {}
            Err(e) => eprintln!("edgecl serve: warning: kept the state as it was: {e}"),
        }
    }

    /// The next camera frame within `wait`, keeping the camera's condition up to date.
    fn next_frame(&mut self, wait: Duration) -> Option<Frame> {
        let feed = self.feed.as_mut()?;
        let mut changed = None;
        if let Some(Err(message)) = feed.ensure_started() {
            changed = Some(feed.down(message));
        }
        let mut frame = None;
        if let Some(latest) = &feed.latest {
            match latest.wait(wait) {
                Next::Frame(f) => {
                    feed.last_frame = Instant::now();
                    feed.backoff = Duration::from_secs(1);
                    if self.camera != Camera::Running {
                        changed = Some(Camera::Running);
                    }
                    frame = Some(f);
                }
                Next::Waiting => {
                    let quiet = feed.last_frame.elapsed();
                    if feed.stalls && quiet >= self.settings.stall {
                        let seconds = (quiet.as_secs_f64() * 10.0).round() / 10.0;
                        if feed.restartable {
                            // A GStreamer camera that stalls is stopped and started again.
                            changed = Some(feed.down(format!("no frame for {seconds:.1} s")));
                        } else if !matches!(self.camera, Camera::Stalled { .. }) {
                            changed = Some(Camera::Stalled { seconds });
                        }
                    }
                }
                Next::Ended => changed = Some(feed.down("the source ended".into())),
                Next::Failed(message) => changed = Some(feed.down(message)),
            }
        }
        if let Some(camera) = changed {
            if let Camera::Down { message, retry_in } = &camera {
                eprintln!(
                    "edgecl serve: camera {:?}: {message}{}",
                    feed.spec,
                    retry_in.map_or(String::new(), |s| format!("; retrying in {s:.0} s"))
                );
                self.out.metrics.camera_restart();
            }
            self.camera = camera;
            self.publish();
        }
        frame
    }

    /// Classifies a live frame, publishes the label and, when someone watches, the frame itself.
    fn live(&mut self, frame: Frame) {
        if self.out.jpeg.receiver_count() > 0 {
            self.publish_jpeg(&frame);
        }
        let counts = self.feed.as_ref().map(Feed::counts).unwrap_or_default();
        self.out.metrics.frames(counts);
        if self.session.learner().class_names().is_empty() {
            return;
        }
        let index = frame.index;
        let captured = frame.captured;
        let prediction = match self
            .session
            .classify(&[DynamicImage::ImageRgb8(frame.image)], self.settings.top)
        {
            Ok(mut p) => p.remove(0),
            Err(e) => {
                eprintln!("edgecl serve: frame {index}: {e}");
                return;
            }
        };
        let latency = captured.elapsed();
        self.out.metrics.frame_latency(latency);
        let label = LiveLabel {
            frame: index,
            prediction,
            latency_ms: latency.as_secs_f64() * 1e3,
            dropped: counts.dropped,
        };
        self.out.last.send_replace(Some(Arc::new(label)));
    }

    fn publish_jpeg(&mut self, frame: &Frame) {
        use image::codecs::jpeg::JpegEncoder;
        self.jpeg_buf.clear();
        let encoded =
            JpegEncoder::new_with_quality(&mut self.jpeg_buf, 75).encode_image(&frame.image);
        if encoded.is_ok() {
            self.out
                .jpeg
                .send_replace(Some(Bytes::copy_from_slice(&self.jpeg_buf)));
        }
    }

    fn handle(&mut self, job: Job) {
        let timeout = self.settings.lock_timeout;
        match job {
            Job::Classify { image, top, reply } => {
                let started = Instant::now();
                let r = self
                    .session
                    .classify(&[image], top)
                    .map(|mut p| p.remove(0));
                self.out
                    .metrics
                    .request_latency("classify", started.elapsed());
                let _ = reply.send(r);
            }
            Job::Learn {
                class,
                images,
                reply,
            } => {
                let started = Instant::now();
                let r = self.session.learn(&class, &images, timeout);
                self.out.metrics.request_latency("learn", started.elapsed());
                self.answer_write(r, reply);
            }
            Job::LearnLive {
                class,
                frames,
                reply,
            } => {
                let started = Instant::now();
                let r = self
                    .capture(frames)
                    .and_then(|images| self.session.learn(&class, &images, timeout));
                self.out.metrics.request_latency("learn", started.elapsed());
                self.answer_write(r, reply);
            }
            Job::Forget { class, reply } => {
                let r = self.session.edit(timeout, |l| l.forget(&class));
                self.answer_write(r, reply);
            }
            Job::Rename { from, to, reply } => {
                let r = self.session.edit(timeout, |l| l.rename(&from, &to));
                self.answer_write(r, reply);
            }
            Job::Merge { from, into, reply } => {
                let r = self.session.edit(timeout, |l| {
                    let from: Vec<&str> = from.iter().map(String::as_str).collect();
                    l.merge(&from, &into)
                });
                self.answer_write(r, reply);
            }
        }
    }

    /// Publishes the new state (after a write that succeeded) and answers.
    fn answer_write<T>(&mut self, r: edgecl::Result<T>, reply: Reply<T>) {
        if r.is_ok() {
            self.publish();
        }
        let _ = reply.send(r);
    }

    /// The next `n` camera frames (each newer than the last), shown on the live view as they come.
    fn capture(&mut self, n: usize) -> edgecl::Result<Vec<DynamicImage>> {
        if self.feed.is_none() {
            return Err(edgecl::Error::Invalid(
                "this server has no camera (--source): send the capture as the request body".into(),
            ));
        }
        let deadline = Instant::now() + self.settings.stall;
        let mut images = Vec::with_capacity(n);
        while images.len() < n {
            if Instant::now() >= deadline {
                return Err(edgecl::Error::Invalid(format!(
                    "the camera sent {} of {n} frames in {:.1} s; nothing was learnt",
                    images.len(),
                    self.settings.stall.as_secs_f64()
                )));
            }
            if let Some(frame) = self.next_frame(Duration::from_millis(100)) {
                if self.out.jpeg.receiver_count() > 0 {
                    self.publish_jpeg(&frame);
                }
                images.push(DynamicImage::ImageRgb8(frame.image));
            }
        }
        Ok(images)
    }
}

/// Marks the worker dead when its thread ends, however it ends.
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}
