//! Classifier heads over frozen features. Only heads learn on the device.
//!
//! The heads are a closed set, so they are one enum, [`Head`], with one set of methods: add or remove a
//! class, learn from a batch of raw features with class indices, score a batch, check a decoded state.
//!
//! | head | what it keeps | learning | paper |
//! | --- | --- | --- | --- |
//! | [`Ncm`] | class sums of normalised features | exact, O(d) a capture | iCaRL / SCR's classifier |
//! | [`Slda`] | class means + one shared covariance | exact, O(d^2) a capture, a `d x d` solve a learn | Hayes & Kanan 2020 |
//! | [`Mahalanobis`] | class means + a covariance per class | exact, a `d x d` solve per changed class | FeCAM, Goswami et al. 2023 |
//! | [`Ranpac`] | random-projection Gram and target sums | exact, `M x M` solves a learn | RanPAC, McDonnell et al. 2023 |
//! | [`Linear`] | softmax weights (+ Fisher for EWC) | SGD on the new data, replay / EWC / A-GEM / LwF | ER, EWC, A-GEM, LwF |
//! | [`Privacy`] | softmax weights (+ adapter), class sums of squares; no memory, nothing under K captures | SGD with dreamt old-class features | ABD, Smith et al. 2021 |
//!
//! The NCM statistics are kept by the learner for every head (they are the feature memory's herding target
//! and the "unknown" rule's spread), so [`Head::Ncm`] has no state of its own: its scores come from them.

pub mod dp;
pub mod dream;
pub mod linalg;
pub mod linear;
pub mod mahalanobis;
pub mod ncm;
pub mod privacy;
pub mod ranpac;
pub mod scan;
pub mod slda;

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

pub use linear::{Linear, LinearOptions};
pub use mahalanobis::Mahalanobis;
pub use ncm::{normalise_rows, Match, Ncm, NcmUndo};
pub use privacy::{Privacy, PrivacyOptions, PrivacyRule};
pub use ranpac::Ranpac;
pub use slda::Slda;

use crate::memory::FeatureMemory;

/// Bounds on the sizes and settings a state may hold. The loader checks each before it allocates
/// anything proportional to it (a crafted file with a valid checksum cannot make edgecl allocate
/// gigabytes or loop for days), and a head cannot be created outside them.
pub mod bounds {
    /// Feature dimension (EfficientNet-Lite0: 1280; the largest common backbones: 4096).
    pub const MAX_DIM: usize = 1 << 16;
    /// RanPAC's projection width and the privacy head's adapter width.
    pub const MAX_HIDDEN: usize = 1 << 14;
    /// Training epochs, dreaming steps, synthetic features per class and batch size of the SGD heads.
    pub const MAX_EPOCHS: u32 = 1_000;
    pub const MAX_STEPS: u32 = 1_000;
    pub const MAX_SYNTHETIC: u32 = 4_096;
    pub const MAX_BATCH: u32 = 4_096;

    /// `value` within `1..=max` (`what` names it in the error).
    pub fn within(what: &str, value: u64, max: u64) -> Result<(), String> {
        if value == 0 || value > max {
            return Err(format!("{what} {value} is not in 1..={max}"));
        }
        Ok(())
    }

    /// A learning rate or weight: finite and not negative.
    pub fn rate(what: &str, value: f32) -> Result<(), String> {
        if !value.is_finite() || value < 0.0 {
            return Err(format!(
                "{what} {value} is not a finite non-negative number"
            ));
        }
        Ok(())
    }
}

/// Which head, by name (`--head`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    Ncm,
    Slda,
    Mahalanobis,
    Ranpac,
    Linear,
    Privacy,
}

impl HeadKind {
    pub const ALL: [HeadKind; 6] = [
        HeadKind::Ncm,
        HeadKind::Slda,
        HeadKind::Mahalanobis,
        HeadKind::Ranpac,
        HeadKind::Linear,
        HeadKind::Privacy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            HeadKind::Ncm => "ncm",
            HeadKind::Slda => "slda",
            HeadKind::Mahalanobis => "mahalanobis",
            HeadKind::Ranpac => "ranpac",
            HeadKind::Linear => "linear",
            HeadKind::Privacy => "privacy",
        }
    }
}

impl std::str::FromStr for HeadKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        HeadKind::ALL
            .into_iter()
            .find(|k| k.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "unknown head {s:?}: one of {}",
                    HeadKind::ALL.map(HeadKind::name).join(", ")
                )
            })
    }
}

impl std::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything needed to create a head; each head reads its own fields.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadConfig {
    pub kind: HeadKind,
    /// SLDA's shrinkage towards the identity.
    pub slda_shrinkage: f64,
    /// Mahalanobis: captures below which a class uses the pooled covariance.
    pub min_samples: u64,
    /// RanPAC projection width and seed.
    pub ranpac_dim: usize,
    pub seed: u64,
    pub linear: LinearOptions,
    /// Privacy mode's K rule and DP (`k`, `dp`); the other fields are the dreaming head's.
    pub privacy: PrivacyOptions,
    /// Privacy mode: ABD's dreaming softmax head instead of NCM (`privacy+abd`).
    pub abd: bool,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig {
            kind: HeadKind::Ncm,
            slda_shrinkage: slda::DEFAULT_SHRINKAGE,
            min_samples: mahalanobis::DEFAULT_MIN_SAMPLES,
            ranpac_dim: ranpac::DEFAULT_DIM,
            seed: 0,
            linear: LinearOptions::default(),
            privacy: PrivacyOptions::default(),
            abd: false,
        }
    }
}

impl HeadConfig {
    pub fn of(kind: HeadKind) -> Self {
        HeadConfig {
            kind,
            ..Default::default()
        }
    }

    /// A short description with the settings that matter, for reports (`linear+replay+ewc(100)`).
    pub fn label(&self) -> String {
        match self.kind {
            HeadKind::Linear => {
                let o = &self.linear;
                let mut s = String::from("linear");
                if o.replay {
                    s += "+replay";
                }
                if o.ewc > 0.0 {
                    s += &format!("+ewc({})", o.ewc);
                }
                if o.agem {
                    s += "+agem";
                }
                if o.lwf > 0.0 {
                    s += &format!("+lwf({})", o.lwf);
                }
                s
            }
            HeadKind::Ranpac => format!("ranpac(M={})", self.ranpac_dim),
            HeadKind::Privacy => {
                let o = &self.privacy;
                let d = PrivacyOptions::default();
                let mut s = format!("privacy(k={})", o.k);
                if self.abd {
                    s += "+abd";
                }
                if o.adapter > 0 {
                    s += &format!("+adapter({})", o.adapter);
                }
                if o.dream_steps != d.dream_steps {
                    s += &format!("+dream({})", o.dream_steps);
                }
                if o.synthetic != d.synthetic {
                    s += &format!("+syn({})", o.synthetic);
                }
                if o.epochs != d.epochs {
                    s += &format!("+epochs({})", o.epochs);
                }
                if o.lr != d.lr {
                    s += &format!("+lr({})", o.lr);
                }
                if let Some(dp) = &o.dp {
                    s += &format!(
                        "+dp(eps={},delta={},clip={})",
                        dp.epsilon, dp.delta, dp.clip
                    );
                }
                s
            }
            k => k.name().to_string(),
        }
    }
}

impl std::str::FromStr for HeadConfig {
    type Err = String;

    /// A head spec: a name, then `+option` or `+option=value` settings:
    /// `ncm`, `slda+shrinkage=1e-3`, `mahalanobis+min=8`, `ranpac+m=512`,
    /// `linear+replay+ewc=100+agem+lwf=2+epochs=30+lr=0.5`,
    /// `privacy+k=5+eps=0.5+delta=1e-5+clip=1` (NCM under the K rule and DP),
    /// `privacy+abd+k=5+adapter=256+dream=50+syn=128+epochs=30+lr=0.5` (ABD's dreaming head).
    /// `seed=N` applies to every head.
    fn from_str(spec: &str) -> Result<Self, String> {
        let mut parts = spec.split('+');
        let kind: HeadKind = parts.next().unwrap_or_default().parse()?;
        let mut c = HeadConfig::of(kind);
        // A setting of the dreaming head, given without `abd`.
        let mut dreaming: Option<&str> = None;
        for part in parts {
            let (key, value) = match part.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (part.trim(), None),
            };
            let num = |what: &str| -> Result<f64, String> {
                value
                    .ok_or_else(|| format!("{spec}: {what} needs a value ({what}=...)"))?
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| format!("{spec}: {what} must be a non-negative number"))
            };
            match (kind, key) {
                (_, "seed") => c.seed = num(key)? as u64,
                (HeadKind::Slda, "shrinkage") => c.slda_shrinkage = num(key)?.min(1.0),
                (HeadKind::Mahalanobis, "min") => c.min_samples = num(key)? as u64,
                (HeadKind::Ranpac, "m") => {
                    c.ranpac_dim = num(key)? as usize;
                    bounds::within("ranpac m", c.ranpac_dim as u64, bounds::MAX_HIDDEN as u64)
                        .map_err(|e| format!("{spec}: {e}"))?;
                }
                (HeadKind::Linear, "replay") => c.linear.replay = true,
                (HeadKind::Linear, "agem") => c.linear.agem = true,
                (HeadKind::Linear, "ewc") => c.linear.ewc = num(key)? as f32,
                (HeadKind::Linear, "lwf") => c.linear.lwf = num(key)? as f32,
                (HeadKind::Linear, "epochs") => c.linear.epochs = num(key)? as u32,
                (HeadKind::Linear, "lr") => c.linear.lr = num(key)? as f32,
                (HeadKind::Linear, "batch") => c.linear.batch = (num(key)? as u32).max(1),
                (HeadKind::Privacy, "k") => c.privacy.k = num(key)? as u32,
                (HeadKind::Privacy, "abd") => c.abd = true,
                (HeadKind::Privacy, "adapter" | "dream" | "syn" | "epochs" | "lr" | "batch") => {
                    dreaming = Some(key);
                    let p = &mut c.privacy;
                    match key {
                        "adapter" => p.adapter = num(key)? as u32,
                        "dream" => p.dream_steps = num(key)? as u32,
                        "syn" => p.synthetic = (num(key)? as u32).max(1),
                        "epochs" => p.epochs = num(key)? as u32,
                        "lr" => p.lr = num(key)? as f32,
                        _ => p.batch = (num(key)? as u32).max(1),
                    }
                }
                (HeadKind::Privacy, "eps" | "delta" | "clip") => {
                    let mut dp = c.privacy.dp.unwrap_or(dp::DpOptions {
                        epsilon: 0.0,
                        delta: 1e-5,
                        clip: 1.0,
                    });
                    match key {
                        "eps" => dp.epsilon = num(key)?,
                        "delta" => dp.delta = num(key)?,
                        _ => dp.clip = num(key)?,
                    }
                    c.privacy.dp = Some(dp);
                }
                _ => return Err(format!("{spec}: {kind} has no option {key:?}")),
            }
        }
        if kind == HeadKind::Privacy {
            if let Some(key) = dreaming.filter(|_| !c.abd) {
                return Err(format!(
                    "{spec}: {key} is a setting of the dreaming head: privacy+abd+{key}=..."
                ));
            }
            c.privacy.validate().map_err(|e| format!("{spec}: {e}"))?;
        }
        if kind == HeadKind::Linear {
            c.linear.validate().map_err(|e| format!("{spec}: {e}"))?;
        }
        Ok(c)
    }
}

/// A classifier head (module docs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Head {
    /// Scores are the learner's NCM cosines; no state of its own.
    Ncm,
    Slda(Slda),
    Mahalanobis(Mahalanobis),
    Ranpac(Ranpac),
    Linear(Linear),
    /// Privacy mode's dreaming head (`privacy+abd`; before it, privacy mode's only head). Appended
    /// after the others: their encodings are unchanged.
    Privacy(Privacy),
    /// Privacy mode's default: NCM over the K-rule (and DP) statistics, no state of its own but the rule.
    /// Appended last, as `Privacy` was.
    PrivacyNcm(PrivacyRule),
}

impl Head {
    pub fn new(dim: usize, config: &HeadConfig) -> Head {
        match config.kind {
            HeadKind::Ncm => Head::Ncm,
            HeadKind::Slda => Head::Slda(Slda::new(dim, config.slda_shrinkage)),
            HeadKind::Mahalanobis => Head::Mahalanobis(Mahalanobis::new(dim, config.min_samples)),
            HeadKind::Ranpac => {
                Head::Ranpac(Ranpac::new(dim, config.ranpac_dim.max(1), config.seed))
            }
            HeadKind::Linear => Head::Linear(Linear::new(
                dim,
                LinearOptions {
                    seed: config.seed,
                    ..config.linear
                },
            )),
            HeadKind::Privacy if config.abd => Head::Privacy(Privacy::new(
                dim,
                PrivacyOptions {
                    seed: config.seed,
                    ..config.privacy
                },
            )),
            HeadKind::Privacy => Head::PrivacyNcm(config.privacy.rule()),
        }
    }

    pub fn kind(&self) -> HeadKind {
        match self {
            Head::Ncm => HeadKind::Ncm,
            Head::Slda(_) => HeadKind::Slda,
            Head::Mahalanobis(_) => HeadKind::Mahalanobis,
            Head::Ranpac(_) => HeadKind::Ranpac,
            Head::Linear(_) => HeadKind::Linear,
            Head::Privacy(_) | Head::PrivacyNcm(_) => HeadKind::Privacy,
        }
    }

    /// Whether the head learns from the feature memory (replay or A-GEM's reference gradients).
    pub fn replays(&self) -> bool {
        matches!(self, Head::Linear(l) if l.options().replay || l.options().agem)
    }

    /// Privacy mode's K rule and DP, `None` for the other heads.
    pub fn privacy_rule(&self) -> Option<PrivacyRule> {
        match self {
            Head::Privacy(p) => Some(p.options().rule()),
            Head::PrivacyNcm(r) => Some(*r),
            _ => None,
        }
    }

    /// Privacy mode's K (captures per stored aggregate), `None` for the other heads.
    pub fn privacy_k(&self) -> Option<u32> {
        self.privacy_rule().map(|r| r.k)
    }

    /// The head's name with its settings (`linear+replay`, `ranpac(M=1024)`).
    pub fn label(&self) -> String {
        let mut c = HeadConfig::of(self.kind());
        match self {
            Head::Linear(l) => c.linear = *l.options(),
            Head::Ranpac(r) => c.ranpac_dim = r.hidden_dim(),
            Head::Privacy(p) => {
                c.privacy = *p.options();
                c.abd = true;
            }
            Head::PrivacyNcm(r) => (c.privacy.k, c.privacy.dp) = (r.k, r.dp),
            _ => {}
        }
        c.label()
    }

    pub fn add_class(&mut self) {
        match self {
            Head::Ncm | Head::PrivacyNcm(_) => {}
            Head::Slda(h) => h.add_class(),
            Head::Mahalanobis(h) => h.add_class(),
            Head::Ranpac(h) => h.add_class(),
            Head::Linear(h) => h.add_class(),
            Head::Privacy(h) => h.add_class(),
        }
    }

    pub fn remove_class(&mut self, class: usize) {
        match self {
            Head::Ncm | Head::PrivacyNcm(_) => {}
            Head::Slda(h) => h.remove_class(class),
            Head::Mahalanobis(h) => h.remove_class(class),
            Head::Ranpac(h) => h.remove_class(class),
            Head::Linear(h) => h.remove_class(class),
            Head::Privacy(h) => h.remove_class(class),
        }
    }

    /// Joins class `from` into class `into`, exactly, before the caller removes `from`; the heads that
    /// were trained by SGD cannot, and say why.
    pub fn merge_class(&mut self, into: usize, from: usize) -> Result<(), String> {
        match self {
            // Two aggregates of at least K captures each add up to one.
            Head::Ncm | Head::PrivacyNcm(_) => {}
            Head::Slda(h) => h.merge_class(into, from),
            Head::Mahalanobis(h) => h.merge_class(into, from),
            Head::Ranpac(h) => h.merge_class(into, from),
            Head::Linear(_) | Head::Privacy(_) => {
                return Err(self.merge_refusal().expect("refuses"))
            }
        }
        Ok(())
    }

    /// Why this head cannot merge classes exactly, if it cannot.
    pub fn merge_refusal(&self) -> Option<String> {
        matches!(self, Head::Linear(_) | Head::Privacy(_)).then(|| {
            format!(
                "the {} head's weights were trained by SGD against the classes as they were; joining two of them has no exact equivalent (forget them and learn the class again)",
                self.kind()
            )
        })
    }

    /// Learns raw features (rows) with their class indices. `memory` is the feature memory as it was
    /// before these features (the linear head replays from it); `means` the class statistics, these
    /// features included (the privacy head dreams from them).
    pub fn learn(
        &mut self,
        features: ArrayView2<f32>,
        labels: &[usize],
        memory: &FeatureMemory,
        means: &Ncm,
    ) {
        match self {
            Head::Ncm | Head::PrivacyNcm(_) => {}
            Head::Slda(h) => h.learn(features, labels),
            Head::Mahalanobis(h) => h.learn(features, labels),
            Head::Ranpac(h) => h.learn(features, labels),
            Head::Linear(h) => h.learn(features, labels, memory),
            Head::Privacy(h) => h.learn(features, labels, means),
        }
    }

    /// Scores `[n, classes]` (higher is better) for raw features; `None` for NCM, whose scores the learner
    /// computes from its class means.
    pub fn scores(&self, features: ArrayView2<f32>) -> Option<Array2<f32>> {
        match self {
            Head::Ncm | Head::PrivacyNcm(_) => None,
            Head::Slda(h) => Some(h.scores(features)),
            Head::Mahalanobis(h) => Some(h.scores(features)),
            Head::Ranpac(h) => Some(h.scores(features)),
            Head::Linear(h) => Some(h.scores(features)),
            Head::Privacy(h) => Some(h.scores(features)),
        }
    }

    /// Rebuilds derived data after a load.
    pub fn refresh(&mut self) {
        match self {
            Head::Mahalanobis(h) => h.refresh(),
            Head::Ranpac(h) => h.refresh(),
            _ => {}
        }
    }

    /// Checks a decoded head against the model's dimension and the number of classes.
    pub fn check(&self, dim: usize, classes: usize) -> Result<(), String> {
        let (own, n) = match self {
            Head::Ncm => return Ok(()),
            Head::PrivacyNcm(r) => return r.check(),
            Head::Slda(h) => (h.check(dim), h.classes()),
            Head::Mahalanobis(h) => (h.check(dim), h.classes()),
            Head::Ranpac(h) => (h.check(dim), h.classes()),
            Head::Linear(h) => (h.check(dim), h.classes()),
            Head::Privacy(h) => (h.check(dim), h.classes()),
        };
        own?;
        if n != classes {
            return Err(format!(
                "{} head has {n} classes, the state {classes}",
                self.kind()
            ));
        }
        Ok(())
    }

    /// Bytes of the head's own encoded state (0 for NCM, whose sums the learner keeps).
    pub fn bytes(&self) -> usize {
        postcard::to_allocvec(self).map_or(0, |v| v.len())
    }
}

/// Rows of `features` grouped by label, classes in ascending order.
pub fn group_by_class(features: ArrayView2<f32>, labels: &[usize]) -> Vec<(usize, Array2<f32>)> {
    let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        groups.entry(l).or_default().push(i);
    }
    groups
        .into_iter()
        .map(|(c, idx)| (c, features.select(Axis(0), &idx)))
        .collect()
}
