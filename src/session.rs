//! A state and its backbone, opened together: the front door for programs that keep a model loaded and
//! learn and classify in-memory frames (`edgecl watch`, `learn --source`, the coming server and Python
//! bindings).
//!
//! Opening checks that the model is the one the state was made with. Classifying reads the state as it
//! is in memory; [`Session::reload_if_changed`] picks up what another process learnt or forgot (a save
//! is a rename, so a changed file is a new inode or a new modification time). Learning embeds first,
//! then takes the state's write lock, loads the state again (another writer may have changed it),
//! learns and saves: an update is on disk before `learn` returns.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use image::DynamicImage;
use ndarray::Array2;

use crate::backbone::{BackboneOptions, Model};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::learner::{Learner, LearnerConfig, Prediction};
use crate::state::StateLock;

/// What identifies one version of a state file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    inode: u64,
    modified: Option<SystemTime>,
    len: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        inode,
        modified: meta.modified().ok(),
        len: meta.len(),
    })
}

pub struct Session {
    path: PathBuf,
    learner: Learner,
    embedder: Embedder,
    stamp: Option<Stamp>,
    /// Settings for a state this session creates (when the file does not exist yet).
    config: LearnerConfig,
}

impl Session {
    /// Opens the state at `path` (or prepares a new one with `config`, created at the first learn) with
    /// the backbone at `model`. A model other than the state's is refused.
    pub fn open(
        path: &Path,
        model: &Path,
        options: &BackboneOptions,
        config: LearnerConfig,
    ) -> Result<Session> {
        let model = Model::open(model)?;
        let embedder = Embedder::new(model, options)?;
        let stamp = stamp(path);
        let learner = match stamp {
            Some(_) => Learner::load(path)?,
            None => Learner::new(embedder.model().reference(), config),
        };
        let m = embedder.model();
        learner.check_model(&m.card.name, &m.sha256)?;
        Ok(Session {
            path: path.to_path_buf(),
            learner,
            embedder,
            stamp,
            config,
        })
    }

    pub fn learner(&self) -> &Learner {
        &self.learner
    }

    pub fn embedder(&self) -> &Embedder {
        &self.embedder
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the state again if another process saved it since; `true` if it did.
    pub fn reload_if_changed(&mut self) -> Result<bool> {
        let now = stamp(&self.path);
        if now == self.stamp || now.is_none() {
            return Ok(false);
        }
        let learner = Learner::load(&self.path)?;
        let m = self.embedder.model();
        learner.check_model(&m.card.name, &m.sha256)?;
        self.learner = learner;
        self.stamp = now;
        Ok(true)
    }

    /// Features of in-memory images.
    pub fn embed(&mut self, images: &[DynamicImage]) -> Result<Array2<f32>> {
        self.embedder.embed_images(images, |_| {})
    }

    /// The `top` nearest classes of each image.
    pub fn classify(&mut self, images: &[DynamicImage], top: usize) -> Result<Vec<Prediction>> {
        let f = self.embed(images)?;
        self.learner.classify(f.view(), top)
    }

    /// Learns `images` as captures of `class` and saves the state under its lock (waiting up to
    /// `lock_timeout` for another writer). Returns the class's capture count.
    pub fn learn(
        &mut self,
        class: &str,
        images: &[DynamicImage],
        lock_timeout: Duration,
    ) -> Result<u64> {
        let features = self.embed(images)?;
        self.learn_features(class, features, lock_timeout)
    }

    /// Under the state's write lock: loads the state as it is on disk (refusing one made with another
    /// model), applies `edit` (learn, forget, rename, merge, ...) and saves it. The session then holds the saved state. Nothing is written if `edit`
    /// fails.
    pub fn edit<T>(
        &mut self,
        lock_timeout: Duration,
        edit: impl FnOnce(&mut Learner) -> Result<T>,
    ) -> Result<T> {
        let lock = StateLock::acquire(&self.path, lock_timeout)?;
        let mut learner = match stamp(&self.path) {
            Some(_) => Learner::load(&self.path)?,
            None => Learner::new(self.embedder.model().reference(), self.config),
        };
        let m = self.embedder.model();
        learner.check_model(&m.card.name, &m.sha256)?;
        let out = edit(&mut learner)?;
        learner.save(&lock)?;
        self.stamp = stamp(&self.path);
        drop(lock);
        self.learner = learner;
        Ok(out)
    }

    /// [`Session::learn`] from features already computed with this session's backbone.
    pub fn learn_features(
        &mut self,
        class: &str,
        features: Array2<f32>,
        lock_timeout: Duration,
    ) -> Result<u64> {
        self.edit(lock_timeout, |learner| {
            learner.learn(class, features.view())?;
            if !learner.pending().is_empty() {
                return Err(Error::Invalid(format!(
                    "privacy mode: {class:?} needs at least K captures in one learn; nothing was stored"
                )));
            }
            let name = crate::class_name::normalise(class)?;
            Ok(learner
                .info()
                .classes
                .iter()
                .find(|c| c.name == name)
                .map_or(0, |c| c.captures))
        })
    }
}
