//! `--head` and the heads' options, shared by `learn` and `eval`.

use anyhow::Result;
use edgecl::head::{HeadConfig, HeadKind};

#[derive(clap::Args, Clone)]
pub struct HeadArgs {
    /// Classifier head, fixed when the state is created: ncm, slda, mahalanobis, ranpac, linear, privacy. Settings
    /// may follow the name: `slda+shrinkage=1e-3`, `mahalanobis+min=8`, `ranpac+m=512`,
    /// `linear+replay+ewc=100+agem+lwf=2` (the flags below do the same).
    /// Default: ncm.
    #[arg(long)]
    pub head: Option<String>,
    /// linear: replay from the feature memory (ER), class-balanced.
    #[arg(long)]
    pub replay: bool,
    /// linear: EWC penalty weight (diagonal Fisher).
    #[arg(long, value_name = "LAMBDA")]
    pub ewc: Option<f32>,
    /// linear: A-GEM gradient projection against a memory batch.
    #[arg(long)]
    pub agem: bool,
    /// linear: LwF distillation from the head as it was, at this temperature.
    #[arg(long, value_name = "T")]
    pub lwf: Option<f32>,
    /// Seed of the head's randomness (RanPAC's projection, the linear head's shuffling).
    #[arg(long, default_value_t = 0)]
    pub head_seed: u64,
    /// Privacy mode (= `--head privacy`): no feature memory; a class's captures are only written once K of
    /// them came in one call, as their sum and count; classifies by nearest class mean.
    #[arg(long)]
    pub privacy: bool,
    /// privacy: classify with ABD's dreaming head (a softmax layer trained on the captures and on features
    /// of the old classes dreamt from their stored statistics) instead of NCM.
    #[arg(long)]
    pub abd: bool,
    /// privacy: K, the captures every stored statistic aggregates (default 5).
    #[arg(long, value_name = "K")]
    pub privacy_k: Option<u32>,
    /// privacy --abd: width of an adapter layer relu(A x + a) before the dreaming head (default: none).
    #[arg(long, value_name = "M", requires = "abd")]
    pub adapter: Option<u32>,
    /// privacy: differential privacy for the class statistics, at this epsilon (0 < epsilon < 1).
    #[arg(long, value_name = "EPSILON")]
    pub dp_epsilon: Option<f64>,
    /// privacy: DP delta (default 1e-5).
    #[arg(long, value_name = "DELTA", requires = "dp_epsilon")]
    pub dp_delta: Option<f64>,
    /// privacy: DP clip norm of each capture's normalised feature (default 1).
    #[arg(long, value_name = "C", requires = "dp_epsilon")]
    pub dp_clip: Option<f64>,
}

impl HeadArgs {
    /// The head spec and the flags, combined; flags other than the seed only apply to `linear`.
    /// Whether any head option was given (they only apply when a state is created).
    pub fn given(&self) -> bool {
        self.head.is_some()
            || self.replay
            || self.agem
            || self.ewc.is_some()
            || self.lwf.is_some()
            || self.head_seed != 0
            || self.privacy_given()
    }

    fn privacy_given(&self) -> bool {
        self.privacy
            || self.abd
            || self.privacy_k.is_some()
            || self.adapter.is_some()
            || self.dp_epsilon.is_some()
    }

    pub fn config(&self) -> Result<HeadConfig> {
        if self.privacy
            && self
                .head
                .as_deref()
                .is_some_and(|h| !h.starts_with("privacy"))
        {
            anyhow::bail!(
                "--privacy is --head privacy; it cannot be combined with --head {}",
                self.head.as_deref().unwrap_or_default()
            );
        }
        let spec = self
            .head
            .as_deref()
            .unwrap_or(if self.privacy { "privacy" } else { "ncm" });
        let mut c: HeadConfig = spec.parse().map_err(anyhow::Error::msg)?;
        if self.privacy_given() && c.kind != HeadKind::Privacy {
            anyhow::bail!(
                "--privacy-k, --abd, --adapter and --dp-* apply to --privacy (--head privacy), not {}",
                c.kind
            );
        }
        if let Some(k) = self.privacy_k {
            c.privacy.k = k;
        }
        c.abd |= self.abd;
        if let Some(m) = self.adapter {
            c.privacy.adapter = m;
        }
        if let Some(epsilon) = self.dp_epsilon {
            c.privacy.dp = Some(edgecl::head::dp::DpOptions {
                epsilon,
                delta: self.dp_delta.unwrap_or(1e-5),
                clip: self.dp_clip.unwrap_or(1.0),
            });
        }
        c.privacy.validate().map_err(anyhow::Error::msg)?;
        let linear_flags = self.replay || self.agem || self.ewc.is_some() || self.lwf.is_some();
        if linear_flags && c.kind != HeadKind::Linear {
            anyhow::bail!(
                "--replay, --ewc, --agem and --lwf apply to --head linear, not {}",
                c.kind
            );
        }
        c.linear.replay |= self.replay;
        c.linear.agem |= self.agem;
        if let Some(l) = self.ewc {
            c.linear.ewc = l;
        }
        if let Some(t) = self.lwf {
            c.linear.lwf = t;
        }
        if self.head_seed != 0 {
            c.seed = self.head_seed;
        }
        Ok(c)
    }
}
