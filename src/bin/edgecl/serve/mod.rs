//! `edgecl serve --state S [--source SRC] [--listen 127.0.0.1:8080]`: the device service.
//!
//! One process loads the model once and keeps the state. One worker thread ([`worker`]) owns the
//! backbone and the state and does all model work (the backbone needs `&mut`); the HTTP side ([`api`],
//! axum on tokio) decodes request images on tokio's blocking pool and hands jobs to the worker over a
//! bounded channel, so a flood of requests is answered "busy" rather than queued without bound. The
//! web page ([`page.html`](page.html)) is compiled into the binary: the device needs no network.
//!
//! Security: by default the server listens on loopback only. Listening on any other address needs a
//! token (`--token`, `EDGECL_TOKEN`, or one generated and printed at start) for every request that
//! is not a GET; the page takes it from the address's `#token=` fragment.

mod api;
mod metrics;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use anyhow::{Context, Result};
use edgecl::session::Session;
use tokio::sync::watch;

use crate::args::{CommonArgs, LockArgs};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// State file; created (NCM head) at the first capture if it does not exist. For another head,
    /// make the state with `edgecl learn --head ...` first.
    #[arg(long)]
    state: PathBuf,
    /// Camera: /dev/videoN, rtsp://..., http://..., libcamera, nvargus, gst:PIPELINE (camera feature),
    /// stdin (MJPEG), stdin:rgb:WxH, dir:PATH. Without it the server classifies and learns posted images.
    #[arg(long)]
    source: Option<String>,
    /// Address to listen on. Anything but loopback requires a token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Bearer token required for every request that is not a GET (generated and printed when listening
    /// beyond loopback without one).
    #[arg(long, env = "EDGECL_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// How many nearest classes each live prediction lists.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Seconds without a frame after which the camera counts as stalled (and a restartable one is
    /// started again).
    #[arg(long, default_value_t = 10.0)]
    stall: f64,
    /// Largest request body (an image), in bytes.
    #[arg(long, default_value_t = 16 << 20)]
    max_body: usize,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(a: Args) -> Result<Outcome> {
    if !(a.stall.is_finite() && a.stall > 0.0) {
        anyhow::bail!("--stall must be a positive number of seconds");
    }
    let token = match (a.token.clone(), a.listen.ip().is_loopback()) {
        (Some(t), _) if t.len() < 16 => {
            anyhow::bail!(
                "--token must be at least 16 characters (this one has {})",
                t.len()
            )
        }
        (Some(t), _) => Some(t),
        (None, true) => None,
        (None, false) => {
            let t = new_token()?;
            eprintln!(
                "edgecl serve: listening beyond loopback: changes need the token {t} \
                 (open the page as http://HOST:{}/#token={t}, or send Authorization: Bearer {t})",
                a.listen.port()
            );
            Some(t)
        }
    };
    let made = match std::fs::symlink_metadata(&a.state) {
        Ok(_) => Some(crate::args::load_state(&a.state)?.model().clone()),
        Err(_) => None,
    };
    let model = a.common.model_path(made.as_ref())?;
    let session = Session::open(
        &a.state,
        &model,
        &a.common.backbone_options(),
        Default::default(),
    )?;
    let runtime = serde_json::to_value(session.embedder().runtime())?;
    eprintln!(
        "edgecl serve: model {} ({}), state {}",
        model.display(),
        crate::output::runtime_line(session.embedder()),
        a.state.display()
    );

    let metrics = Arc::new(metrics::Metrics::new());
    let (jobs_tx, jobs_rx) = mpsc::sync_channel(api::QUEUE);
    let alive = Arc::new(AtomicBool::new(true));
    let first = worker::Snapshot {
        state: session.learner().info(),
        camera: if a.source.is_some() {
            worker::Camera::Starting
        } else {
            worker::Camera::None
        },
    };
    let outputs = worker::Outputs {
        snapshot: watch::Sender::new(Arc::new(first)),
        last: watch::Sender::new(None),
        jpeg: watch::Sender::new(None),
        metrics: Arc::clone(&metrics),
        alive: Arc::clone(&alive),
    };
    let shared = api::Shared {
        jobs: jobs_tx,
        snapshot: outputs.snapshot.subscribe(),
        last: outputs.last.subscribe(),
        jpeg: outputs.jpeg.clone(),
        metrics,
        alive,
        token,
        runtime,
        has_camera: a.source.is_some(),
        floor: session.embedder().floor(),
        max_body: a.max_body,
    };
    let settings = worker::Settings {
        source: a.source.clone(),
        top: a.top,
        stall: Duration::from_secs_f64(a.stall),
        lock_timeout: a.lock.lock_timeout,
    };
    let worker = worker::Worker::new(session, jobs_rx, outputs, settings);
    let worker = std::thread::Builder::new()
        .name("edgecl-model".into())
        .spawn(move || worker.run())?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let listen = a.listen;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener.local_addr()?;
        // Tests and scripts read the address (an ephemeral port) from this line.
        eprintln!("edgecl serve: listening on http://{bound}/");
        let stop = Arc::new(tokio::sync::Notify::new());
        let server = axum::serve(listener, api::router(shared)).with_graceful_shutdown({
            let stop = Arc::clone(&stop);
            async move {
                shutdown().await;
                stop.notify_one();
            }
        });
        // Live streams (events, the camera view) never end by themselves: after a signal, open
        // connections get a moment to finish, then the server stops anyway.
        tokio::select! {
            r = server => r.context("the HTTP server failed"),
            _ = async {
                stop.notified().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
            } => Ok(()),
        }
    })?;
    // Dropping the router dropped the job sender: the worker finishes its job and ends.
    drop(runtime);
    let _ = worker.join();
    Ok(Outcome::Yes)
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("edgecl serve: shutting down");
}

/// 128 random bits as hex, from the kernel.
fn new_token() -> Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .context("cannot read /dev/urandom for a token; give one with --token")?;
    Ok(edgecl::card::hex(&b))
}
