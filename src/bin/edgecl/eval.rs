//! `edgecl eval`: a class-incremental protocol on CIFAR-10, Fashion-MNIST or an image folder, for one or
//! more heads; writes report.md, report.json and a_t.png.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use edgecl::dataset::{self, Dataset, Split};
use edgecl::embed::Embedder;
use edgecl::eval::cache::{self, CacheOutcome, FeatureSet};
use edgecl::eval::plot::{self, Drawn};
use edgecl::eval::protocol::{ClassOrder, Protocol};
use edgecl::eval::report::Report;
use edgecl::eval::run::{self, Progress};
use edgecl::head::HeadConfig;
use edgecl::learner::LearnerConfig;
use edgecl::memory::Storage;

use crate::args::{parse_bytes, CommonArgs};
use crate::output::{progress, runtime_line};
use crate::Outcome;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DatasetArg {
    Cifar10,
    FashionMnist,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum OrderArg {
    Natural,
    Shuffled,
}

#[derive(clap::Args)]
pub struct Args {
    /// Benchmark dataset, read from --data (or $EDGECL_DATA, else ../shared/data).
    #[arg(long, value_enum, conflicts_with = "folder")]
    dataset: Option<DatasetArg>,
    /// An image folder with one sub-folder per class (a user's own data) instead of a benchmark.
    #[arg(long)]
    folder: Option<PathBuf>,
    /// Folder of the benchmark datasets (holding cifar10-partial/ or cifar10/, fashion-mnist/).
    #[arg(long, env = "EDGECL_DATA")]
    data: Option<PathBuf>,
    /// Heads to compare, comma-separated specs: ncm, slda, mahalanobis, ranpac, linear, with settings
    /// after `+` (e.g. `linear+replay`, `linear+ewc=100`, `ranpac+m=512`; see `edgecl learn --help`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ncm,slda,mahalanobis,ranpac,linear,linear+replay,linear+ewc=100,linear+agem,linear+lwf=2"
    )]
    heads: Vec<String>,
    /// Number of steps.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// Classes per step.
    #[arg(long, default_value_t = 2)]
    increment: usize,
    /// Classes in the first step (0: the same as --increment), e.g. 50 for CIFAR-100's B50 protocols.
    #[arg(long, default_value_t = 0)]
    base: usize,
    /// Class order: the dataset's, or shuffled by each seed.
    #[arg(long, value_enum, default_value = "natural")]
    order: OrderArg,
    /// Training images per class: `all`, or K drawn by the seed (the camera case: 1, 5, 10).
    #[arg(long, default_value = "all")]
    shots: String,
    /// Seeds, comma-separated; each is one run (class order, shots, head randomness), reported as mean ± std.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    seeds: Vec<u64>,
    /// Use only the first N training images of each class (to bound feature extraction time).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Use only the first N test images of each class.
    #[arg(long)]
    test_limit: Option<usize>,
    /// With --folder: every n-th image of each class (sorted by name) is held out for testing, n = 1 / this.
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// Feature-memory budget of each learner (default: 256KiB for the heads that replay or use A-GEM,
    /// none for the others).
    #[arg(long, value_parser = parse_bytes)]
    memory_budget: Option<u64>,
    #[arg(long, default_value = "int8")]
    storage: Storage,
    /// Where report.md, report.json and a_t.png go.
    #[arg(long, default_value = "eval-report")]
    out: PathBuf,
    /// Feature cache directory (default: $EDGECL_CACHE/features or ~/.cache/edgecl/features).
    #[arg(long)]
    cache: Option<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

fn data_root(explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let rel = PathBuf::from("../shared/data");
        if rel.is_dir() {
            rel
        } else {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data")
        }
    })
}

/// The dataset's files (for the cache key), its two splits and where they came from.
struct Loaded {
    name: String,
    dir: PathBuf,
    files: Vec<PathBuf>,
    train: Dataset,
    test: Dataset,
    /// For folders: the indices of the one dataset that form each split.
    train_idx: Vec<usize>,
    test_idx: Vec<usize>,
}

fn load(a: &Args) -> Result<Loaded> {
    if let Some(dir) = &a.folder {
        let all = dataset::folder(dir)?;
        if !(a.test_fraction > 0.0 && a.test_fraction < 1.0) {
            bail!("--test-fraction must be between 0 and 1");
        }
        let every = (1.0 / a.test_fraction).round().max(2.0) as usize;
        let mut nth = vec![0usize; all.class_names.len()];
        let (mut train_idx, mut test_idx) = (Vec::new(), Vec::new());
        for i in 0..all.len() {
            let c = all.labels[i] as usize;
            nth[c] += 1;
            if nth[c] % every == 0 {
                test_idx.push(i);
            } else {
                train_idx.push(i);
            }
        }
        // The same walk as `dataset::folder`: class sub-folders sorted by name, image files sorted.
        let mut class_dirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| dir.display().to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        class_dirs.sort();
        let files = edgecl::embed::collect_images(&class_dirs)?;
        let test = dataset::folder(dir)?;
        return Ok(Loaded {
            name: format!("folder {}", dir.display()),
            dir: dir.clone(),
            files,
            train: all,
            test,
            train_idx,
            test_idx,
        });
    }
    let root = data_root(a.data.clone());
    let (name, dir, train, test) = match a.dataset.unwrap_or(DatasetArg::Cifar10) {
        DatasetArg::Cifar10 => {
            let dir = ["cifar10-partial", "cifar10", "cifar-10-batches-bin"]
                .iter()
                .map(|d| root.join(d))
                .find(|d| d.is_dir())
                .with_context(|| {
                    format!(
                        "no cifar10-partial/, cifar10/ or cifar-10-batches-bin/ under {}",
                        root.display()
                    )
                })?;
            let train = dataset::cifar10(&dir, Split::Train)?;
            let test = dataset::cifar10(&dir, Split::Test)?;
            ("cifar10", dir, train, test)
        }
        DatasetArg::FashionMnist => {
            let dir = [
                root.join("fashion-mnist"),
                PathBuf::from("/usr/share/datasets/fashion-mnist"),
            ]
            .into_iter()
            .find(|d| d.is_dir())
            .with_context(|| {
                format!(
                    "no fashion-mnist/ under {} (or apt-get install dataset-fashion-mnist)",
                    root.display()
                )
            })?;
            let train = dataset::fashion_mnist(&dir, Split::Train)?;
            let test = dataset::fashion_mnist(&dir, Split::Test)?;
            ("fashion-mnist", dir, train, test)
        }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.extension().is_some_and(|e| e == "md" || e == "json"))
        .collect();
    files.sort();
    let train_idx = (0..train.len()).collect();
    let test_idx = (0..test.len()).collect();
    Ok(Loaded {
        name: name.into(),
        dir,
        files,
        train,
        test,
        train_idx,
        test_idx,
    })
}

/// The first `limit` of `idx` per class (all with `None`).
fn limit_per_class(ds: &Dataset, idx: &[usize], limit: Option<usize>) -> Vec<usize> {
    let Some(k) = limit else { return idx.to_vec() };
    let mut taken = vec![0usize; ds.class_names.len()];
    idx.iter()
        .copied()
        .filter(|&i| {
            let c = ds.labels[i] as usize;
            taken[c] += 1;
            taken[c] <= k
        })
        .collect()
}

/// Features of the images `idx` of `ds`, from the cache or extracted (with a progress bar).
#[allow(clippy::too_many_arguments)]
fn features(
    a: &Args,
    embedder: &mut Embedder,
    ds: &Dataset,
    idx: &[usize],
    split: &str,
    data_hash: &[u8],
    cache_dir: &Path,
) -> Result<FeatureSet> {
    let model = embedder.model().clone();
    let input = serde_json::to_vec(&model.card.input)?;
    let idx_bytes: Vec<u8> = idx.iter().flat_map(|&i| (i as u32).to_le_bytes()).collect();
    let key = cache::key(&[
        &model.sha256,
        &input,
        cache::PREPROCESS_REVISION.as_bytes(),
        format!("{:?}", embedder.floor()).as_bytes(),
        // tract and ONNX Runtime agree only within the card's atol (0.25 for the int8 model).
        embedder.runtime().runtime.as_bytes(),
        data_hash,
        split.as_bytes(),
        &idx_bytes,
    ]);
    let quiet = a.common.quiet;
    let (set, outcome) = cache::load_or_build(cache_dir, &key, || {
        let bar = progress(idx.len(), &format!("{split} features"), quiet);
        let mut out = ndarray::Array2::zeros((idx.len(), embedder.dim()));
        for (c, chunk) in idx.chunks(256).enumerate() {
            let images = chunk
                .iter()
                .map(|&i| ds.image(i, embedder.floor()))
                .collect::<edgecl::Result<Vec<_>>>()?;
            let f = embedder.embed_images(&images, |_| {})?;
            out.slice_mut(ndarray::s![c * 256..c * 256 + chunk.len(), ..])
                .assign(&f);
            bar.set_position((c * 256 + chunk.len()) as u64);
        }
        bar.finish_and_clear();
        Ok(FeatureSet {
            labels: idx.iter().map(|&i| ds.labels[i]).collect(),
            features: out,
        })
    })?;
    match outcome {
        CacheOutcome::Hit => {}
        CacheOutcome::Built => eprintln!(
            "{split}: {} images embedded, cached in {}",
            idx.len(),
            cache_dir.display()
        ),
        CacheOutcome::Rebuilt(why) => {
            eprintln!("{split}: the cached features were unusable ({why}); rebuilt")
        }
    }
    Ok(set)
}

pub fn run(a: Args) -> Result<Outcome> {
    let heads: Vec<HeadConfig> = a
        .heads
        .iter()
        .map(|h| h.parse().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let shots = match a.shots.as_str() {
        "all" => None,
        k => Some(
            k.parse::<usize>()
                .ok()
                .filter(|&k| k > 0)
                .context("--shots is `all` or a positive number")?,
        ),
    };
    let protocol = Protocol {
        steps: a.steps,
        base: a.base,
        increment: a.increment,
        order: match a.order {
            OrderArg::Natural => ClassOrder::Natural,
            OrderArg::Shuffled => ClassOrder::Shuffled,
        },
        shots,
        seeds: a.seeds.clone(),
    };
    let loaded = load(&a)?;
    protocol.check(loaded.train.class_names.len())?;
    let mut embedder = a.common.embedder(None)?;
    let model = embedder.model().clone();
    if !a.common.json {
        eprintln!("data:    {} ({})", loaded.name, loaded.dir.display());
        eprintln!("model:   {} ({}-d)", model.card.name, embedder.dim());
        eprintln!("runtime: {}", runtime_line(&embedder));
    }
    // Dataset identity: each file's name and sha256.
    let mut data_hash = Vec::new();
    for f in &loaded.files {
        data_hash.extend_from_slice(f.file_name().unwrap_or_default().as_encoded_bytes());
        data_hash.extend_from_slice(&cache::file_sha256(f)?);
    }
    let cache_dir = a.cache.clone().unwrap_or_else(cache::default_dir);
    let train_idx = limit_per_class(&loaded.train, &loaded.train_idx, a.train_limit);
    let test_idx = limit_per_class(&loaded.test, &loaded.test_idx, a.test_limit);
    let train = features(
        &a,
        &mut embedder,
        &loaded.train,
        &train_idx,
        "train",
        &data_hash,
        &cache_dir,
    )?;
    let test = features(
        &a,
        &mut embedder,
        &loaded.test,
        &test_idx,
        "test",
        &data_hash,
        &cache_dir,
    )?;
    let class_names = loaded.train.class_names.clone();
    let quiet = a.common.quiet || a.common.json;
    let results = run::run(
        &train,
        &test,
        &class_names,
        &protocol,
        &heads,
        LearnerConfig {
            memory_budget: a.memory_budget,
            storage: a.storage,
            ..Default::default()
        },
        |p| {
            let Progress::Step {
                head,
                seed,
                step,
                accuracy,
            } = p;
            if !quiet {
                eprintln!(
                    "{head:<24} seed {seed} step {}: A = {:.1}%",
                    step + 1,
                    100.0 * accuracy
                );
            }
        },
    )?;
    let report = Report {
        dataset: loaded.name.clone(),
        data_path: loaded.dir.display().to_string(),
        train_images: train.labels.len(),
        test_images: test.labels.len(),
        model: model.card.name.clone(),
        model_sha256: model.sha256_hex(),
        feature_dim: embedder.dim(),
        protocol,
        memory_budget: a.memory_budget,
        memory_storage: format!("{:?}", a.storage).to_lowercase(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        heads: results,
    };
    std::fs::create_dir_all(&a.out).with_context(|| a.out.display().to_string())?;
    let md = report.markdown();
    std::fs::write(a.out.join("report.md"), &md)?;
    std::fs::write(
        a.out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let png = a.out.join("a_t.png");
    let drawn = plot::draw(
        &png,
        &format!("{}: {}", report.dataset, report.protocol.describe()),
        &report.heads,
        960,
        600,
    )?;
    if a.common.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!("{md}");
        outln!(
            "wrote {0}/report.md, {0}/report.json, {0}/a_t.png",
            a.out.display()
        );
    }
    if drawn == Drawn::NoText {
        eprintln!("note: no TrueType font found (set EDGECL_FONT or install fonts-dejavu-core): the plot has no text");
    }
    Ok(Outcome::Yes)
}
