//! Nearest-class-mean arithmetic over slices; the formulas are documented in [`crate::head::ncm`]
//! (std builds) and repeated here in brief.
//!
//! A class is the f64 sum of its L2-normalised features and a count. Its raw mean is `m = sum / n`; the
//! query is compared with the renormalised mean `mu = m / ||m||` by cosine, and the distance between unit
//! vectors is `sqrt(2 - 2 cos)`.

/// Scales `x` to unit L2 norm in place (a zero vector stays zero).
pub fn normalise(x: &mut [f32]) {
    let norm = libm::sqrtf(x.iter().map(|v| v * v).sum::<f32>());
    if norm > 0.0 {
        x.iter_mut().for_each(|v| *v /= norm);
    }
}

/// Adds one L2-normalised feature to a class sum.
pub fn accumulate(sum: &mut [f64], x: &[f32]) {
    for (s, &v) in sum.iter_mut().zip(x) {
        *s += v as f64;
    }
}

/// Writes the raw mean `sum / count` into `out`.
pub fn raw_mean(sum: &[f64], count: u64, out: &mut [f32]) {
    let n = count.max(1) as f64;
    for (o, s) in out.iter_mut().zip(sum) {
        *o = (s / n) as f32;
    }
}

/// Writes the renormalised mean `m / ||m||` into `out` (zeros for a zero sum) and returns `||m||^2`.
pub fn renormalised_mean(sum: &[f64], count: u64, out: &mut [f32]) -> f64 {
    let n = count.max(1) as f64;
    let norm2: f64 = sum.iter().map(|s| (s / n) * (s / n)).sum();
    let norm = libm::sqrt(norm2);
    for (m, s) in out.iter_mut().zip(sum) {
        *m = if norm > 0.0 {
            (s / n / norm) as f32
        } else {
            0.0
        };
    }
    norm2
}

/// Dot product, summed in order.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Euclidean distance between two unit vectors with cosine `score` (0..=2).
pub fn distance(score: f32) -> f32 {
    libm::sqrtf((2.0 - 2.0 * score).max(0.0))
}

/// Squared distance of a unit query to a raw mean with squared norm `raw_norm2`, from its cosine to the
/// renormalised mean: `||f - m||^2 = 1 - 2 ||m|| cos + ||m||^2`.
pub fn distance2_to_raw_mean(raw_norm2: f64, score: f32) -> f64 {
    (1.0 - 2.0 * libm::sqrt(raw_norm2) * score as f64 + raw_norm2).max(0.0)
}

/// The `k` best classes by score (highest first, ties to the lower index): fills `order` (one slot per
/// score) and returns its first `min(k, scores.len())` entries. O(classes) selection, then a sort of `k`.
///
/// # Panics
/// If `order.len() != scores.len()`.
pub fn top_k<'a>(scores: &[f32], order: &'a mut [usize], k: usize) -> &'a [usize] {
    assert_eq!(order.len(), scores.len(), "one order slot per score");
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    // A total order (index breaks ties), so an unstable sort gives the one answer.
    let by_score = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b));
    let k = k.min(order.len());
    if k > 0 && k < order.len() {
        order.select_nth_unstable_by(k - 1, by_score);
    }
    order[..k].sort_unstable_by(by_score);
    &order[..k]
}

/// Captures' worth of weight the pooled spread gets when a class's own spread is estimated.
pub const PRIOR_CAPTURES: f64 = 2.0;
/// Floor on the spread: identical captures would otherwise give a zero threshold. 1e-3 is a cosine of
/// about 0.9995 to the mean.
pub const MIN_SPREAD: f64 = 1e-3;

/// Per-class squared-distance limits of the unknown rule into `out` (`None` where no limit applies):
/// `factor * max(shrunk spread, MIN_SPREAD) * (n + 1) / n`, the spread shrunk towards the pooled spread
/// with the weight of [`PRIOR_CAPTURES`]. No limits while no class has two captures, or for `factor <= 0`.
///
/// # Panics
/// If the three slices differ in length.
pub fn thresholds(counts: &[u64], raw_norm2: &[f64], factor: f32, out: &mut [Option<f64>]) {
    assert!(counts.len() == raw_norm2.len() && counts.len() == out.len());
    out.iter_mut().for_each(|o| *o = None);
    if factor <= 0.0 {
        return;
    }
    let Some(pooled) = pooled_spread(counts, raw_norm2) else {
        return;
    };
    for (c, o) in out.iter_mut().enumerate() {
        *o = limit(counts[c], raw_norm2[c], factor, pooled);
    }
}

/// A class's unbiased spread `(1 - ||m||^2) n / (n - 1)`, from two captures on.
fn spread(n: u64, raw_norm2: f64) -> Option<f64> {
    let n = n as f64;
    (n >= 2.0).then(|| (1.0 - raw_norm2).max(0.0) * n / (n - 1.0))
}

/// The spread pooled over the classes with two captures or more (weights `n - 1`); `None` while there
/// is none. One pass, no allocation: with [`limit`], one class's threshold costs O(classes) once per
/// query batch and O(1) a class, the same value as [`thresholds`] gives.
///
/// # Panics
/// If the slices differ in length.
pub fn pooled_spread(counts: &[u64], raw_norm2: &[f64]) -> Option<f64> {
    assert_eq!(counts.len(), raw_norm2.len());
    let (mut num, mut den) = (0.0, 0.0);
    for (&n, &r) in counts.iter().zip(raw_norm2) {
        if let Some(s2) = spread(n, r) {
            let w = n as f64 - 1.0;
            num += w * s2;
            den += w;
        }
    }
    (den != 0.0).then(|| num / den)
}

/// One class's limit (see [`thresholds`]) given the pooled spread; `None` for an empty class or
/// `factor <= 0`.
pub fn limit(count: u64, raw_norm2: f64, factor: f32, pooled: f64) -> Option<f64> {
    let n = count as f64;
    if n == 0.0 || factor <= 0.0 {
        return None;
    }
    let own = spread(count, raw_norm2).unwrap_or(0.0) * (n - 1.0).max(0.0);
    let shrunk = (own + PRIOR_CAPTURES * pooled) / ((n - 1.0).max(0.0) + PRIOR_CAPTURES);
    Some(factor as f64 * shrunk.max(MIN_SPREAD) * (n + 1.0) / n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_index() {
        let scores = [0.1, 0.9, 0.5, 0.9, -1.0];
        let mut order = [0; 5];
        assert_eq!(top_k(&scores, &mut order, 3), &[1, 3, 2]);
        assert_eq!(top_k(&scores, &mut order, 9), &[1, 3, 2, 0, 4]);
        assert_eq!(top_k(&scores, &mut order, 0), &[] as &[usize]);
    }

    #[test]
    fn renormalised_mean_has_unit_norm_and_reports_the_raw_norm() {
        let sum = [3.0, 4.0];
        let mut out = [0.0; 2];
        let n2 = renormalised_mean(&sum, 10, &mut out);
        assert!((n2 - 0.25).abs() < 1e-12);
        assert_eq!(out, [0.6, 0.8]);
        assert_eq!(renormalised_mean(&[0.0, 0.0], 1, &mut out), 0.0);
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn distances_follow_the_unit_vector_identities() {
        assert_eq!(distance(1.0), 0.0);
        assert!((distance(0.0) - core::f32::consts::SQRT_2).abs() < 1e-7);
        assert_eq!(distance(-1.0), 2.0);
        // ||(1,0) - (0.5,0)||^2 = 0.25, cos to the renormalised mean (1,0) = 1.
        assert!((distance2_to_raw_mean(0.25, 1.0) - 0.25).abs() < 1e-12);
    }
}
