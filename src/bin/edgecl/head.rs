//! `--head` and the heads' options, shared by `learn` and `eval`.

use anyhow::Result;
use edgecl::head::{HeadConfig, HeadKind};

#[derive(clap::Args, Clone)]
pub struct HeadArgs {
    /// Classifier head, fixed when the state is created: ncm, slda, mahalanobis, ranpac, linear. Settings
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
    }

    pub fn config(&self) -> Result<HeadConfig> {
        let spec = self.head.as_deref().unwrap_or("ncm");
        let mut c: HeadConfig = spec.parse().map_err(anyhow::Error::msg)?;
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
