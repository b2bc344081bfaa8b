//! `edgecl learn --state S --class NAME PATH...`
//!
//! In privacy mode (`--privacy`) a call that brings fewer than K captures of the class learns nothing
//! that is kept: the captures were only in this process's RAM, the state file is left as it was, and
//! the exit code is 1 (a negative answer: "not stored").

use std::path::PathBuf;

use anyhow::{Context, Result};
use edgecl::embed::collect_images;
use edgecl::head::ncm::DEFAULT_UNKNOWN_FACTOR;
use edgecl::learner::{Learner, LearnerConfig};
use edgecl::memory::Storage;

use crate::args::{parse_bytes, CommonArgs, LockArgs};
use crate::head::HeadArgs;
use crate::output::runtime_line;
use crate::Outcome;

#[derive(clap::Args)]
pub struct Args {
    /// State file; created if it does not exist.
    #[arg(long)]
    state: PathBuf,
    /// Name of the class the captures show.
    #[arg(long)]
    class: String,
    /// Image files, or directories of them.
    #[arg(required_unless_present = "source")]
    paths: Vec<PathBuf>,
    /// Capture from a camera instead of files: stdin (MJPEG), stdin:rgb:WxH, dir:PATH.
    #[arg(long, conflicts_with = "paths")]
    source: Option<String>,
    /// With --source: how many frames to capture.
    #[arg(long, default_value_t = 10, requires = "source")]
    frames: usize,
    /// With --source: seconds between captured frames.
    #[arg(long, default_value_t = 0.25, requires = "source")]
    interval: f64,
    /// Feature-memory budget in bytes (e.g. 256KiB; 0 keeps no features). Default: 256KiB for the heads
    /// that replay (linear with --replay or --agem), none for the others. Fixed when the state is created.
    #[arg(long, value_parser = parse_bytes)]
    memory_budget: Option<u64>,
    /// How stored features are encoded. Fixed when the state is created.
    #[arg(long, default_value = "int8")]
    storage: Storage,
    /// Multiple of a class's expected spread beyond which a query is unknown (0: never unknown).
    #[arg(long)]
    unknown_factor: Option<f32>,
    #[command(flatten)]
    head: HeadArgs,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub fn run(a: Args) -> Result<Outcome> {
    let class = edgecl::class_name::normalise(&a.class)?;
    let files = match a.source {
        Some(_) => Vec::new(),
        None => collect_images(&a.paths)?,
    };
    // A first look, without the lock, for the model and the head: embedding can take long and other
    // writers should not wait for it.
    let peek = load_if_there(&a.state, false)?;
    if let Some(l) = &peek {
        check_head(&a, l)?;
    }
    let mut embedder = a.common.embedder(peek.as_ref().map(|l| l.model()))?;
    let model = embedder.model().clone();
    if let Some(l) = &peek {
        l.check_model(&model.card.name, &model.sha256)?;
    }
    let (features, learned) = match &a.source {
        Some(source) => {
            let frames = capture(
                source,
                embedder.floor(),
                a.frames,
                a.interval,
                !a.common.quiet,
            )?;
            (embedder.embed_images(&frames, |_| {})?, frames.len())
        }
        None => {
            let bar = a.common.progress(files.len(), "embedding");
            let f = embedder.embed_files(&files, |n| bar.set_position(n as u64))?;
            bar.finish_and_clear();
            (f, files.len())
        }
    };
    // From here to the save, the state is ours alone: load it again (another writer may have changed
    // it since the first look), learn, save.
    let lock = a.lock.acquire(&a.state)?;
    let mut learner = match load_if_there(&a.state, true)? {
        Some(l) => {
            check_head(&a, &l)?;
            l.check_model(&model.card.name, &model.sha256)?;
            l
        }
        None => Learner::new(
            model.reference(),
            LearnerConfig {
                memory_budget: a.memory_budget,
                storage: a.storage,
                unknown_factor: a.unknown_factor.unwrap_or(DEFAULT_UNKNOWN_FACTOR),
                head: a.head.config()?,
            },
        ),
    };
    if let Some(f) = a.unknown_factor {
        learner.set_unknown_factor(f)?;
    }
    learner.learn(&class, features.view())?;
    if let Some(p) = learner.pending().iter().find(|p| p.name == class) {
        let k = learner.info().privacy.map_or(0, |i| i.k);
        let message = format!(
            "privacy mode: {} capture(s) of {:?} are fewer than K = {k}; they were held in this process's memory only and NOT written; {} is unchanged. Learn the class again with at least {k} captures in one call.",
            p.captures,
            p.name,
            a.state.display()
        );
        if a.common.json {
            let out = serde_json::json!({
                "class": p.name, "stored": false, "captures": p.captures, "k": k,
                "state": a.state, "message": message,
            });
            outln!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            outln!("{message}");
        }
        return Ok(Outcome::No);
    }
    learner.save(&lock)?;
    drop(lock);
    let info = learner.info();
    let class = info
        .classes
        .iter()
        .find(|c| c.name == class)
        .expect("just learnt");
    if a.common.json {
        let out = serde_json::json!({
            "class": class.name, "learned": learned, "captures": class.captures,
            "classes": info.classes.len(), "head": info.head, "memory_bytes": info.memory_bytes, "memory_budget": info.memory_budget,
            "state": a.state, "state_bytes": info.state_bytes, "runtime": embedder.runtime(),
            "stored": true, "privacy": info.privacy,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!(
            "learned {} capture(s) of {:?} ({} in all); {} classes; memory {} / {} bytes; state {} bytes -> {}",
            learned,
            class.name,
            class.captures,
            info.classes.len(),
            info.memory_bytes,
            info.memory_budget,
            info.state_bytes,
            a.state.display()
        );
        outln!("runtime: {}", runtime_line(&embedder));
    }
    Ok(Outcome::Yes)
}

/// The state at `path`, or `None` when there is none yet (a dangling symlink is where a new one goes).
/// `notes`: say on stderr what was migrated from an earlier release.
fn load_if_there(path: &std::path::Path, notes: bool) -> Result<Option<Learner>> {
    match std::fs::metadata(path) {
        Ok(_) if notes => Ok(Some(crate::args::load_state(path)?)),
        Ok(_) => Ok(Some(
            Learner::load(path).context("the state file was left as it is")?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("{}", path.display())),
    }
}

/// The head is fixed when a state is created: asking for another one is an error.
fn check_head(a: &Args, l: &Learner) -> Result<()> {
    if a.head.given() {
        let (want, have) = (a.head.config()?.label(), l.info().head);
        if want != have {
            anyhow::bail!(
                "{} was made with head {have}; the head is fixed when a state is created (asked for {want})",
                a.state.display()
            );
        }
    }
    Ok(())
}

/// Takes `n` frames from a live source, `interval` seconds apart (the newest frame each time), with a
/// countdown and progress on a terminal.
fn capture(
    spec: &str,
    floor: edgecl::preprocess::Floor,
    n: usize,
    interval: f64,
    talk: bool,
) -> Result<Vec<image::DynamicImage>> {
    use std::io::IsTerminal;
    if n == 0 || n > 10_000 || !(interval.is_finite() && (0.0..=3600.0).contains(&interval)) {
        anyhow::bail!("--frames must be 1 to 10000 and --interval 0 to 3600 seconds");
    }
    let talk = talk && std::io::stderr().is_terminal();
    let latest = edgecl::frames::Latest::spawn(edgecl::frames::open(spec, floor)?);
    if talk {
        for s in (1..=3).rev() {
            eprint!("\rcapturing in {s}...");
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
    let mut out = Vec::with_capacity(n);
    let gap = std::time::Duration::from_secs_f64(interval);
    while out.len() < n {
        let Some(frame) = latest.take(std::time::Duration::from_secs(30))? else {
            anyhow::bail!(
                "the source ended after {} of {n} frames; nothing was learnt",
                out.len()
            );
        };
        out.push(image::DynamicImage::ImageRgb8(frame.image));
        if talk {
            eprint!("\rcaptured {}/{n}        ", out.len());
        }
        if out.len() < n {
            std::thread::sleep(gap);
        }
    }
    if talk {
        eprintln!();
    }
    Ok(out)
}
