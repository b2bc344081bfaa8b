//! `edgecl info --audit`: every array a state holds, what it aggregates, and the privacy invariants.
//!
//! The checks:
//!
//! 1. **no exemplar memory**: the feature memory holds no vectors (each would be one capture's feature);
//! 2. **K captures per class**: every stored class aggregates at least K captures (the privacy head's K,
//!    else the K asked for); a class of one capture stores that capture's feature as its "mean";
//! 3. **size is the arrays listed**: the encoded state is the listed arrays plus a bounded overhead
//!    (header, names' and vectors' length prefixes, counters), and every listed array's shape is set by
//!    the number of classes, the dimension and the head's settings, except the feature memory's (its
//!    rows are captures, and check 1 requires none). So the state grows with classes, not captures;
//! 4. with captures to compare (`--captures`): **no stored vector is near a capture**: no class mean,
//!    second-moment root (`sqrt(sumsq / n)`), head or adapter row in the input space, or memory vector is
//!    within `min_distance` (Euclidean, both sides L2-normalised) of any of them.
//!
//! One state is all the audit sees. That each stored update aggregated K captures (not only each class's
//! total) is the learner's rule in privacy mode, not something a single file can show.

use ndarray::{Array2, ArrayView1, ArrayView2};
use serde::Serialize;

use super::Learner;
use crate::head::{normalise_rows, Head};

/// One array of the state.
#[derive(Debug, Clone, Serialize)]
pub struct AuditArray {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
    /// Encoded bytes (values only).
    pub bytes: usize,
    /// What it is computed from.
    pub aggregates: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditCheck {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub head: String,
    /// The K the class counts were checked against.
    pub k: u32,
    pub state_bytes: usize,
    pub arrays: Vec<AuditArray>,
    pub checks: Vec<AuditCheck>,
    pub passed: bool,
}

/// Overhead allowed beyond the listed arrays: header, model reference, settings, and per class a few
/// length prefixes and counters.
fn allowance(model_bytes: usize, classes: usize) -> usize {
    512 + model_bytes + 48 * classes
}

fn arr(name: &str, shape: Vec<usize>, dtype: &str, width: usize, what: &str) -> AuditArray {
    AuditArray {
        name: name.into(),
        bytes: shape.iter().product::<usize>() * width,
        shape,
        dtype: dtype.into(),
        aggregates: what.into(),
    }
}

fn varint_len(v: u64) -> usize {
    ((64 - v.leading_zeros() as usize).max(1)).div_ceil(7)
}

impl Learner {
    /// Audits the state (module docs). `k` is used for heads other than privacy; `captures` are raw
    /// features to compare the stored vectors with.
    pub fn audit(&self, k: u32, captures: Option<ArrayView2<f32>>, min_distance: f32) -> Audit {
        let b = &self.body;
        let (c, d) = (b.class_names.len(), self.dim());
        let mut arrays = Vec::new();
        let names_bytes: usize = b.class_names.iter().map(|n| n.len()).sum();
        arrays.push(AuditArray {
            name: "class names".into(),
            shape: vec![c],
            dtype: "utf-8".into(),
            bytes: names_bytes,
            aggregates: "the labels given to learn".into(),
        });
        arrays.push(arr(
            "class sums",
            vec![c, d],
            "f64",
            8,
            "per class: sum of its captures' L2-normalised features (the NCM statistics every head keeps)",
        ));
        let counts_bytes: usize = (0..c).map(|i| varint_len(b.means.count(i))).sum();
        arrays.push(AuditArray {
            name: "class counts".into(),
            shape: vec![c],
            dtype: "u64 (varint)".into(),
            bytes: counts_bytes,
            aggregates: "per class: captures in its sum".into(),
        });
        let dp = b.head.privacy_rule().is_some_and(|r| r.dp.is_some());
        if dp {
            let last = arrays.len() - 1;
            arrays[last - 1].aggregates += " plus Gaussian noise (DP release per learn call)";
            arrays[last].aggregates += " plus Gaussian noise, rounded, at least K per release";
        }
        match &b.head {
            Head::Ncm | Head::PrivacyNcm(_) => {}
            Head::Slda(_) => {
                arrays.push(arr(
                    "slda class counts",
                    vec![c],
                    "u64 (varint)",
                    1,
                    "per class: captures",
                ));
                arrays.push(arr(
                    "slda class means",
                    vec![c, d],
                    "f64",
                    8,
                    "per class: mean feature",
                ));
                arrays.push(arr(
                    "slda shared scatter",
                    vec![d * (d + 1) / 2],
                    "f64",
                    8,
                    "packed d x d covariance scatter over every capture",
                ));
                arrays.push(arr(
                    "slda weights",
                    vec![c, d],
                    "f32",
                    4,
                    "solved from the means and the covariance",
                ));
                arrays.push(arr(
                    "slda bias",
                    vec![c],
                    "f32",
                    4,
                    "solved from the means and the covariance",
                ));
            }
            Head::Mahalanobis(_) => {
                arrays.push(arr(
                    "mahalanobis class counts",
                    vec![c],
                    "u64 (varint)",
                    1,
                    "per class: captures",
                ));
                arrays.push(arr(
                    "mahalanobis class means",
                    vec![c, d],
                    "f64",
                    8,
                    "per class: mean of the Tukey-transformed features",
                ));
                arrays.push(arr(
                    "mahalanobis class scatters",
                    vec![c, d * (d + 1) / 2],
                    "f32",
                    4,
                    "per class: packed d x d scatter of its captures",
                ));
            }
            Head::Ranpac(r) => {
                let m = r.hidden_dim();
                arrays.push(arr(
                    "ranpac gram",
                    vec![m * (m + 1) / 2],
                    "f64",
                    8,
                    "packed M x M Gram of the projected captures",
                ));
                arrays.push(arr(
                    "ranpac held-out gram",
                    vec![m * (m + 1) / 2],
                    "f64",
                    8,
                    "the same over the held-out captures",
                ));
                arrays.push(arr(
                    "ranpac targets",
                    vec![m, c],
                    "f64",
                    8,
                    "per class: sum of its projected captures",
                ));
                arrays.push(arr(
                    "ranpac held-out targets",
                    vec![m, c],
                    "f64",
                    8,
                    "the same over the held-out captures",
                ));
                arrays.push(arr(
                    "ranpac weights",
                    vec![c, m],
                    "f32",
                    4,
                    "ridge solution from the Gram and targets",
                ));
            }
            Head::Linear(_) => {
                arrays.push(arr(
                    "linear weights",
                    vec![c, d],
                    "f32",
                    4,
                    "SGD-trained softmax weights",
                ));
                arrays.push(arr(
                    "linear bias",
                    vec![c],
                    "f32",
                    4,
                    "SGD-trained softmax bias",
                ));
                arrays.push(arr(
                    "linear fisher",
                    vec![c, d],
                    "f32",
                    4,
                    "EWC's diagonal Fisher: mean squared gradients over the captures",
                ));
                arrays.push(arr(
                    "linear fisher bias",
                    vec![c],
                    "f32",
                    4,
                    "the same for the bias",
                ));
                arrays.push(arr(
                    "linear trained flags",
                    vec![c],
                    "bool",
                    1,
                    "whether each class was trained",
                ));
            }
            Head::Privacy(p) => {
                let f = p.weights().0.ncols();
                if let Some(a) = p.adapter() {
                    let m = a.bias.len();
                    arrays.push(arr(
                        "adapter weights",
                        vec![m, d],
                        "f32",
                        4,
                        "SGD-trained adapter relu(A x + a) (local CE, feature distillation)",
                    ));
                    arrays.push(arr("adapter bias", vec![m], "f32", 4, "the same"));
                }
                arrays.push(arr("privacy head weights", vec![c, f], "f32", 4, "SGD-trained softmax weights (local CE, class-balanced fine-tuning on real + dreamt features)"));
                arrays.push(arr("privacy head bias", vec![c], "f32", 4, "the same"));
                let rows = p.sums_of_squares().iter().filter(|s| !s.is_empty()).count();
                if rows > 0 {
                    arrays.push(arr("class sums of squares", vec![rows, d], "f64", 8, "per class: per-dimension sum of squared normalised features over the same captures as its sum"));
                }
                arrays.push(arr(
                    "privacy trained flags",
                    vec![c],
                    "bool",
                    1,
                    "whether each class was trained",
                ));
            }
        }
        let mem = &b.memory;
        let per_vector = mem.vector_bytes() as usize;
        arrays.push(AuditArray {
            name: "feature memory".into(),
            shape: vec![mem.len(), d],
            dtype: format!("{:?}", mem.storage()),
            bytes: mem.len() * per_vector,
            aggregates: "per-capture exemplar features (one row per stored capture)".into(),
        });

        let mut checks = Vec::new();
        let k = b.head.privacy_k().unwrap_or(k);
        checks.push(AuditCheck {
            name: "no exemplar memory".into(),
            passed: mem.is_empty(),
            detail: if mem.is_empty() {
                format!("the feature memory holds no vectors (budget {} bytes)", mem.budget())
            } else {
                format!(
                    "the feature memory keeps {} captures' features ({} bytes): each is one capture",
                    mem.len(),
                    mem.bytes()
                )
            },
        });
        let few: Vec<String> = (0..c)
            .filter(|&i| b.means.count(i) < k as u64)
            .map(|i| format!("{:?} ({})", b.class_names[i], b.means.count(i)))
            .collect();
        checks.push(AuditCheck {
            name: format!("every class aggregates at least K = {k} captures"),
            passed: few.is_empty(),
            detail: if few.is_empty() {
                format!("{c} classes, each from {k} captures or more")
            } else {
                format!("classes with fewer than {k} captures: {}", few.join(", "))
            },
        });
        let state_bytes = self.to_bytes().len();
        let listed: usize = arrays.iter().map(|a| a.bytes).sum();
        let model_bytes = b.model.name.len() + b.model.path.len() + 32;
        let extra = state_bytes.saturating_sub(listed);
        let allowed = allowance(model_bytes, c);
        checks.push(AuditCheck {
            name: "state size is the arrays listed (classes and dimension, not captures)".into(),
            passed: extra <= allowed,
            detail: format!(
                "{listed} of {state_bytes} bytes are the arrays listed; the other {extra} (allowed {allowed}) are the header, model reference, settings, length prefixes and counters"
            ),
        });
        if let Some(x) = captures {
            checks.push(self.distance_check(x, min_distance));
        }
        let passed = checks.iter().all(|c| c.passed);
        Audit {
            head: b.head.label(),
            k,
            state_bytes,
            arrays,
            checks,
            passed,
        }
    }

    /// The stored vectors that live in the input space, L2-normalised, with a name each.
    fn stored_vectors(&self) -> Vec<(String, Vec<f32>)> {
        let b = &self.body;
        let d = self.dim();
        let mut out = Vec::new();
        for (i, name) in b.class_names.iter().enumerate() {
            out.push((format!("mean of {name:?}"), b.means.raw_mean(i)));
        }
        let rows = |m: &Array2<f32>, what: &str, out: &mut Vec<(String, Vec<f32>)>| {
            if m.ncols() == d {
                for (i, r) in m.rows().into_iter().enumerate() {
                    out.push((format!("{what} row {i}"), r.to_vec()));
                }
            }
        };
        match &b.head {
            Head::Linear(h) => rows(h.weights().0, "linear weights", &mut out),
            Head::Privacy(p) => {
                rows(p.weights().0, "privacy head weights", &mut out);
                if let Some(a) = p.adapter() {
                    rows(&a.weights, "adapter weights", &mut out);
                }
                for (i, s) in p.sums_of_squares().iter().enumerate() {
                    if !s.is_empty() {
                        let n = b.means.count(i).max(1) as f64;
                        let root = s.iter().map(|&v| (v / n).max(0.0).sqrt() as f32).collect();
                        out.push((
                            format!("second-moment root of {:?}", b.class_names[i]),
                            root,
                        ));
                    }
                }
            }
            _ => {}
        }
        for class in 0..b.class_names.len() {
            let f = b.memory.class_features(class);
            for (j, r) in f.rows().into_iter().enumerate() {
                out.push((
                    format!("memory vector {j} of {:?}", b.class_names[class]),
                    r.to_vec(),
                ));
            }
        }
        for (_, v) in &mut out {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            if n > 0.0 {
                v.iter_mut().for_each(|x| *x /= n);
            }
        }
        out
    }

    fn distance_check(&self, captures: ArrayView2<f32>, min_distance: f32) -> AuditCheck {
        let name = format!("no stored vector within {min_distance} of a given capture");
        if captures.ncols() != self.dim() {
            return AuditCheck {
                name,
                passed: false,
                detail: format!(
                    "the captures are {}-d, the state {}-d",
                    captures.ncols(),
                    self.dim()
                ),
            };
        }
        let mut x = captures.to_owned();
        normalise_rows(&mut x);
        let stored = self.stored_vectors();
        let mut nearest: Option<(f32, usize, String)> = None;
        for (i, q) in x.rows().into_iter().enumerate() {
            for (what, v) in &stored {
                let dist = distance(q, v);
                if nearest.as_ref().is_none_or(|(best, _, _)| dist < *best) {
                    nearest = Some((dist, i, what.clone()));
                }
            }
        }
        match nearest {
            None => AuditCheck {
                name,
                passed: true,
                detail: "nothing to compare".into(),
            },
            Some((dist, i, what)) => AuditCheck {
                name,
                passed: dist >= min_distance,
                detail: format!(
                    "{} stored vectors against {} captures; the closest pair is capture {i} and the {what}, at {dist:.4}",
                    stored.len(),
                    x.nrows()
                ),
            },
        }
    }
}

fn distance(a: ArrayView1<f32>, b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f32>()
        .sqrt()
}

#[cfg(test)]
mod tests {
    use super::super::private::tests::{captures, private_learner};
    use crate::head::{HeadConfig, PrivacyOptions};
    use crate::learner::{Learner, LearnerConfig};
    use crate::memory::Storage;
    use crate::state::ModelRef;

    fn failed(a: &super::Audit) -> Vec<String> {
        a.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name.clone())
            .collect()
    }

    #[test]
    fn a_privacy_state_passes_and_its_size_does_not_grow_with_captures() {
        for abd in [false, true] {
            sizes_do_not_grow(abd);
        }
    }

    fn sizes_do_not_grow(abd: bool) {
        let sizes: Vec<usize> = [5usize, 400]
            .into_iter()
            .map(|n| {
                let mut l = private_learner(
                    PrivacyOptions {
                        epochs: 2,
                        ..Default::default()
                    },
                    abd,
                );
                for c in 0..3 {
                    l.learn(&format!("class {c}"), captures(c, n, c).view())
                        .unwrap();
                }
                let a = l.audit(5, Some(captures(1, 10, 100).view()), 0.05);
                assert!(a.passed, "{n} captures: {:?}", a.checks);
                let second = a.arrays.iter().any(|x| x.name == "class sums of squares");
                assert_eq!(second, abd, "only the dreaming head keeps second moments");
                a.state_bytes
            })
            .collect();
        // Counts are varints: 5 and 400 take 1 and 2 bytes each, so three classes differ by 3 bytes.
        assert_eq!(sizes[1] - sizes[0], 3, "{sizes:?}");
    }

    #[test]
    fn a_state_with_exemplars_or_a_small_class_fails() {
        let model = ModelRef {
            name: "toy".into(),
            sha256: [3; 32],
            dim: 6,
            path: "toy.onnx".into(),
        };
        let mut l = Learner::new(
            model,
            LearnerConfig {
                memory_budget: Some(4096),
                storage: Storage::F32,
                unknown_factor: 1.5,
                head: HeadConfig::default(),
            },
        );
        l.learn("a", captures(0, 8, 0).view()).unwrap();
        l.learn("b", captures(1, 2, 0).view()).unwrap();
        let a = l.audit(5, None, 0.05);
        assert!(!a.passed);
        let f = failed(&a);
        assert!(f.iter().any(|n| n == "no exemplar memory"), "{f:?}");
        assert!(f.iter().any(|n| n.contains("at least K = 5")), "{f:?}");
        let mem = a
            .arrays
            .iter()
            .find(|x| x.name == "feature memory")
            .unwrap();
        assert_eq!(mem.shape, vec![10, 6]);
        // The memory's vectors are the captures themselves: the distance check finds them.
        let d = l.audit(5, Some(captures(1, 2, 0).view()), 0.05);
        let check = d.checks.last().unwrap();
        assert!(
            !check.passed && check.detail.contains("memory vector"),
            "{check:?}"
        );
    }

    #[test]
    fn the_distance_check_catches_a_class_learnt_from_copies_of_one_capture() {
        let mut l = private_learner(PrivacyOptions::default(), false);
        let one = captures(0, 1, 0);
        let copies = one.broadcast((5, 6)).unwrap().to_owned();
        l.learn("copies", copies.view()).unwrap();
        l.learn("varied", captures(1, 5, 0).view()).unwrap();
        // K is met, but the stored mean is that one capture.
        let a = l.audit(5, Some(one.view()), 0.05);
        assert_eq!(failed(&a).len(), 1, "{:?}", a.checks);
        assert!(
            a.checks[3].detail.contains("\"copies\""),
            "{:?}",
            a.checks[3]
        );
        let varied = l.audit(5, Some(captures(1, 5, 0).view()), 0.05);
        assert!(varied.passed, "{:?}", varied.checks);
    }
}
