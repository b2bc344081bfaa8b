//! `edgecl watch --state S --source SRC`: classify a camera stream, one line per frame.
//!
//! The model is loaded once; frames come from a [`Latest`] source, so when the model is slower than the
//! camera old frames are dropped (and counted), never queued. The state is reloaded when another process
//! saves it, so a class learnt or forgotten elsewhere shows up on the next frame. At the end of the
//! stream a summary goes to stderr: frames, dropped frames, frames per second, latency percentiles.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use edgecl::frames::{self, Latest};
use edgecl::session::Session;
use image::DynamicImage;

use crate::args::{load_state, CommonArgs};
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// State file (made by `learn`).
    #[arg(long)]
    state: PathBuf,
    /// Frame source: stdin (MJPEG), stdin:rgb:WxH, dir:PATH.
    #[arg(long, default_value = "stdin")]
    source: String,
    /// Print only when the label changes.
    #[arg(long)]
    on_change: bool,
    /// Classify at most this many frames a second.
    #[arg(long)]
    fps: Option<f64>,
    /// How many nearest classes to list.
    #[arg(long, default_value_t = 3)]
    top: usize,
    /// Stop after classifying this many frames (default: until the stream ends).
    #[arg(long)]
    frames: Option<usize>,
    /// Give up when the source sends nothing for this many seconds.
    #[arg(long, default_value_t = 30.0)]
    stall: f64,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(a: Args) -> Result<Outcome> {
    if a.fps.is_some_and(|f| !(f.is_finite() && f > 0.0)) || !(a.stall > 0.0 && a.stall.is_finite())
    {
        anyhow::bail!("--fps and --stall must be positive numbers");
    }
    let peek = load_state(&a.state)?;
    let model = a.common.model_path(Some(peek.model()))?;
    let mut session = Session::open(
        &a.state,
        &model,
        &a.common.backbone_options(),
        Default::default(),
    )?;
    let latest = Latest::spawn(frames::open(&a.source, session.embedder().floor())?);
    let gap = a.fps.map(|f| Duration::from_secs_f64(1.0 / f));
    let stall = Duration::from_secs_f64(a.stall);
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut last: Option<Option<String>> = None;
    let mut next_slot = Instant::now();
    while a.frames.is_none_or(|n| latencies.len() < n) {
        let Some(frame) = latest.take(stall)? else {
            break;
        };
        if let Err(e) = session.reload_if_changed() {
            eprintln!("edgecl: warning: kept the state as it was: {e}");
        }
        if session.learner().class_names().is_empty() {
            continue;
        }
        let index = frame.index;
        let captured = frame.captured;
        let p = session
            .classify(&[DynamicImage::ImageRgb8(frame.image)], a.top)?
            .remove(0);
        let latency = captured.elapsed();
        latencies.push(latency);
        let changed = last.as_ref() != Some(&p.label);
        last = Some(p.label.clone());
        if !a.on_change || changed {
            let ms = latency.as_secs_f64() * 1e3;
            if a.common.json {
                outln!(
                    "{}",
                    serde_json::json!({
                        "frame": index, "label": p.label, "unknown": p.unknown, "top": p.top,
                        "latency_ms": ms, "dropped": latest.counts().dropped,
                    })
                );
            } else {
                let best = &p.top[0];
                outln!(
                    "frame {index}: {} (score {:.3}, distance {:.3}) {ms:.1} ms",
                    p.label.as_deref().unwrap_or("unknown"),
                    best.score,
                    best.distance
                );
            }
        }
        if let Some(gap) = gap {
            next_slot += gap;
            let now = Instant::now();
            if next_slot > now {
                std::thread::sleep(next_slot - now);
            } else {
                next_slot = now;
            }
        }
    }
    let counts = latest.counts();
    latencies.sort();
    let pct = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "watch: {} frames read, {} classified ({:.1} per second), {} dropped; capture-to-label latency median {:.1} ms, p99 {:.1} ms",
        counts.read,
        latencies.len(),
        latencies.len() as f64 / secs.max(1e-9),
        counts.dropped,
        pct(0.5),
        pct(0.99)
    );
    Ok(Outcome::Yes)
}
