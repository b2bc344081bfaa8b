//! An int8 index over the NCM class means for the one-query case: scan every class cheaply, then
//! rescore exactly only the classes that can still be among the k nearest.
//!
//! Ranking by `q . mu_c` is the same as ranking by `q . (mu_c - g)` for any fixed centre `g`, so the
//! index stores residuals `r_c = mu_c - g` (g: the mean of the class means when the index was last
//! centred), which are shorter than the means and quantise with a smaller step. Each residual is int8
//! with one scale per class, a quarter of the bytes of the f32 means: the scan is bound by memory
//! traffic, so bytes are time. The query is quantised finer (int16, up to 4,095 levels), which costs
//! the same instructions once int8 is widened.
//!
//! Every approximate score comes with an exact error bound. With `q ~= s_q q16` and `r ~= s_c r8`:
//! `|q.r - s_q s_c q16.r8| <= ||q - s_q q16|| ||r|| + ||s_q q16|| ||r - s_c r8||` (Cauchy-Schwarz on each
//! error term). A class whose upper bound is below the k-th best lower bound cannot be among the k
//! nearest; the rest are the candidates.

use ndarray::ArrayView2;

use crate::memory::quantise_i8;

#[derive(Debug, Clone, Default)]
pub struct MeanIndex {
    dim: usize,
    /// `classes x dim` int8 residuals, row-major.
    values: Vec<i8>,
    scale: Vec<f32>,
    /// `||r_c - scale_c * values_c||`, rounded up.
    error: Vec<f32>,
    /// `||r_c||`, rounded up.
    norm: Vec<f32>,
    /// The centre `g` (empty: zero).
    centre: Vec<f32>,
    /// Classes when the centre was last computed.
    centred_at: usize,
}

impl MeanIndex {
    pub fn new(dim: usize) -> Self {
        MeanIndex {
            dim,
            ..Default::default()
        }
    }

    pub fn classes(&self) -> usize {
        self.scale.len()
    }

    /// Appends a class whose mean is `mean`.
    pub fn push(&mut self, mean: &[f32]) {
        self.values.resize(self.values.len() + self.dim, 0);
        self.scale.push(1.0);
        self.error.push(0.0);
        self.norm.push(0.0);
        self.quantise(self.classes() - 1, mean);
    }

    pub fn remove(&mut self, class: usize) {
        self.values.drain(class * self.dim..(class + 1) * self.dim);
        self.scale.remove(class);
        self.error.remove(class);
        self.norm.remove(class);
    }

    /// Class `class`'s mean changed (`means`: all renormalised means, row-major). Re-centres the whole
    /// index when the number of classes has doubled since it was last centred (amortised O(d) a class).
    pub fn update(&mut self, means: ArrayView2<f32>, class: usize) {
        if self.classes() >= 2 * self.centred_at.max(4) {
            self.rebuild(means);
        } else {
            self.quantise(class, row(&means, class));
        }
    }

    /// Re-centres on the mean of `means`' non-zero rows and re-quantises every class.
    pub fn rebuild(&mut self, means: ArrayView2<f32>) {
        let classes = means.nrows();
        let mut centre = vec![0.0f64; self.dim];
        let mut live = 0;
        for r in means.rows() {
            if r.iter().any(|&x| x != 0.0) {
                live += 1;
                centre.iter_mut().zip(r).for_each(|(g, &x)| *g += x as f64);
            }
        }
        self.centre = centre
            .iter()
            .map(|g| (g / live.max(1) as f64) as f32)
            .collect();
        self.centred_at = classes;
        self.values = vec![0; classes * self.dim];
        self.scale = vec![1.0; classes];
        self.error = vec![0.0; classes];
        self.norm = vec![0.0; classes];
        for c in 0..classes {
            self.quantise(c, row(&means, c));
        }
    }

    fn quantise(&mut self, class: usize, mean: &[f32]) {
        let d = self.dim;
        let residual: Vec<f32> = if self.centre.is_empty() {
            mean.to_vec()
        } else {
            mean.iter().zip(&self.centre).map(|(m, g)| m - g).collect()
        };
        let values = &mut self.values[class * d..(class + 1) * d];
        let scale = quantise_i8(&residual, values);
        let (mut err2, mut norm2) = (0.0f64, 0.0f64);
        for (&r, &v) in residual.iter().zip(values.iter()) {
            err2 += ((r - v as f32 * scale) as f64).powi(2);
            norm2 += (r as f64).powi(2);
        }
        self.scale[class] = scale;
        self.error[class] = round_up(err2.sqrt());
        self.norm[class] = round_up(norm2.sqrt());
    }

    /// Classes that can be among the `k` highest `query . mu_c` (a superset; `k >= 1`), given that the
    /// caller compares exact scores with up to `slack` rounding error each; with each, an upper bound on
    /// that computed score; highest bound first (so the caller can stop rescoring once a bound falls
    /// below its k-th best score).
    pub fn candidates(&self, query: &[f32], k: usize, slack: f64) -> Vec<(usize, f64)> {
        let classes = self.classes();
        let k = k.clamp(1, classes.max(1));
        if classes <= k {
            return (0..classes).map(|c| (c, f64::INFINITY)).collect();
        }
        // Largest query level with 127 * levels * d inside an i32.
        let levels = (i32::MAX as f64 / (127.0 * self.dim.max(1) as f64)).min(4095.0) as f32;
        let max = query.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let sq = if max > 0.0 { max / levels } else { 1.0 };
        let q16: Vec<i16> = query.iter().map(|&x| (x / sq).round() as i16).collect();
        let (mut err2, mut norm2) = (0.0f64, 0.0f64);
        for (&x, &v) in query.iter().zip(&q16) {
            let r = v as f32 * sq;
            err2 += ((x - r) as f64).powi(2);
            norm2 += (r as f64).powi(2);
        }
        let (q_err, q_norm) = (err2.sqrt(), norm2.sqrt());
        let mut dots = vec![0i32; classes];
        dot_rows(&q16, &self.values, &mut dots);
        let mut low = Vec::with_capacity(classes);
        let mut high = Vec::with_capacity(classes);
        for (c, &dot) in dots.iter().enumerate() {
            let approx = dot as f64 * sq as f64 * self.scale[c] as f64;
            let bound = q_err * self.norm[c] as f64 + q_norm * self.error[c] as f64 + slack;
            low.push(approx - bound);
            high.push(approx + bound);
        }
        let (_, &mut floor, _) = low.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        // The bounds are on `q . r_c`; `q . mu_c = q . r_c + q . g` (in f64: its rounding is far below
        // the f32 `slack` already in each bound).
        let centre: f64 = query
            .iter()
            .zip(&self.centre)
            .map(|(&q, &g)| q as f64 * g as f64)
            .sum();
        let mut out: Vec<(usize, f64)> = (0..classes)
            .filter(|&c| high[c] >= floor)
            .map(|c| (c, high[c] + centre))
            .collect();
        out.sort_unstable_by(|a, b| b.1.total_cmp(&a.1));
        out
    }
}

fn row<'a>(means: &'a ArrayView2<f32>, class: usize) -> &'a [f32] {
    let d = means.ncols();
    &means
        .as_slice()
        .expect("the means matrix is standard layout")[class * d..(class + 1) * d]
}

/// f64 to f32, never below the f64 value (the bounds must stay bounds).
fn round_up(x: f64) -> f32 {
    let y = x as f32;
    if (y as f64) < x {
        y.next_up()
    } else {
        y
    }
}

/// Largest query level the kernels take (`|q| <= QUERY_LEVELS`).
const QUERY_LEVELS: i16 = 4095;

/// `out[r] = q . row r` for a row-major int8 matrix `q.len()` wide, exactly (the caller keeps
/// `|q| <= 4095` and `|q| * 127 * d` inside an i32).
///
/// On x86_64 (checked at run time): with AVX-512 VNNI, 64 int8 products a `vpdpbusd` (below); else with
/// AVX2 the portable loop compiled for 256-bit lanes (the portable build assumes only SSE2, where
/// widening int8 takes several instructions a lane). ARM builds get NEON from their baseline target.
fn dot_rows(q: &[i16], rows: &[i8], out: &mut [i32]) {
    debug_assert_eq!(rows.len(), q.len() * out.len());
    debug_assert!(q.iter().all(|v| v.abs() <= QUERY_LEVELS));
    #[cfg(target_arch = "x86_64")]
    {
        if vnni() {
            // SAFETY: AVX-512 F, BW and VNNI are present (checked by `vnni`).
            return unsafe { dot_rows_vnni(q, rows, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 is present (checked just above).
            return unsafe { dot_rows_avx2(q, rows, out) };
        }
    }
    dot_rows_portable(q, rows, out)
}

/// Whether [`dot_rows`] takes the AVX-512 VNNI kernel on this CPU.
#[cfg(target_arch = "x86_64")]
fn vnni() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vnni")
}

/// [`dot_rows`] with `vpdpbusd`, which multiplies unsigned by signed bytes: the query, shifted to
/// `q + 4096` in 0..=8191, is split into a high byte (0..=31) and a low byte, so
/// `q . r = 256 (hi . r) + lo . r - 4096 sum(r)`, the sum from a third `vpdpbusd` against ones. Each
/// partial sum stays inside an i32 for any `d <= 65,536` (`255 * 127 * d`), and the result is the same
/// integer as the portable loop's. Rows are read once, 64 bytes at a time; the tail in scalar code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dot_rows_vnni(q: &[i16], rows: &[i8], out: &mut [i32]) {
    use std::arch::x86_64::*;
    let d = q.len();
    if d == 0 {
        return out.fill(0);
    }
    let shifted: Vec<u16> = q.iter().map(|&v| (v + 4096) as u16).collect();
    let hi: Vec<u8> = shifted.iter().map(|&v| (v >> 8) as u8).collect();
    let lo: Vec<u8> = shifted.iter().map(|&v| (v & 0xFF) as u8).collect();
    let body = d - d % 64;
    let ones = _mm512_set1_epi8(1);
    for (o, row) in out.iter_mut().zip(rows.chunks_exact(d)) {
        let (mut acc_hi, mut acc_lo, mut acc_sum) = (
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
            _mm512_setzero_si512(),
        );
        let mut i = 0;
        while i < body {
            // SAFETY: i + 64 <= body <= d, the length of `row`, `hi` and `lo`; unaligned loads.
            let r = _mm512_loadu_si512(row.as_ptr().add(i).cast());
            let h = _mm512_loadu_si512(hi.as_ptr().add(i).cast());
            let l = _mm512_loadu_si512(lo.as_ptr().add(i).cast());
            acc_hi = _mm512_dpbusd_epi32(acc_hi, h, r);
            acc_lo = _mm512_dpbusd_epi32(acc_lo, l, r);
            acc_sum = _mm512_dpbusd_epi32(acc_sum, ones, r);
            i += 64;
        }
        let mut total = 256 * _mm512_reduce_add_epi32(acc_hi) as i64
            + _mm512_reduce_add_epi32(acc_lo) as i64
            - 4096 * _mm512_reduce_add_epi32(acc_sum) as i64;
        for j in body..d {
            total += q[j] as i64 * row[j] as i64;
        }
        *o = total as i32;
    }
}

#[inline(always)]
fn dot_rows_portable(q: &[i16], rows: &[i8], out: &mut [i32]) {
    if q.is_empty() {
        return out.fill(0);
    }
    for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
        // i16 x i16 -> i32 products summed in i32 lanes: the form LLVM turns into pmaddwd.
        *o = q
            .iter()
            .zip(r)
            .map(|(&a, &b)| a as i32 * b as i16 as i32)
            .sum();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_rows_avx2(q: &[i16], rows: &[i8], out: &mut [i32]) {
    dot_rows_portable(q, rows, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn the_integer_dot_is_exact_at_the_extremes() {
        let d = 1280;
        let q = vec![4095i16; d];
        let rows: Vec<i8> = [vec![127i8; d], vec![-127i8; d], vec![0i8; d]].concat();
        let mut out = vec![0; 3];
        dot_rows(&q, &rows, &mut out);
        assert_eq!(out, [4095 * 127 * d as i32, -4095 * 127 * d as i32, 0]);
    }

    #[test]
    fn every_kernel_gives_the_portable_loops_integers() {
        // Widths with and without a tail after the 64-byte blocks, queries at the extremes and random.
        #[cfg(target_arch = "x86_64")]
        eprintln!("AVX-512 VNNI kernel on this CPU: {}", vnni());
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for d in [1usize, 63, 64, 65, 200, 1280] {
            let rows: Vec<i8> = (0..7 * d).map(|_| (next() % 255) as i8).collect();
            let extreme = |v: i16| vec![v; d];
            let random: Vec<i16> = (0..d)
                .map(|_| (next() % 8191) as i16 - QUERY_LEVELS)
                .collect();
            for q in [
                extreme(QUERY_LEVELS),
                extreme(-QUERY_LEVELS),
                extreme(0),
                random,
            ] {
                let (mut got, mut want) = (vec![0; 7], vec![0; 7]);
                dot_rows(&q, &rows, &mut got);
                dot_rows_portable(&q, &rows, &mut want);
                assert_eq!(got, want, "d = {d}");
            }
        }
    }

    #[test]
    fn candidates_contain_the_true_top_k_and_prune_distant_classes() {
        // Classes along distinct axes plus one near-duplicate pair: the query is nearest the pair.
        let d = 64;
        let mut means = Array2::<f32>::zeros((20, d));
        for c in 0..20 {
            means[[c, c]] = 1.0;
        }
        means.row_mut(1).fill(0.0);
        means[[1, 0]] = 0.999f32;
        means[[1, 1]] = (1.0f32 - 0.999 * 0.999).sqrt();
        let mut index = MeanIndex::new(d);
        index.rebuild(means.view());
        let mut q = vec![0.0f32; d];
        q[0] = 0.9;
        q[1] = 0.1;
        q[5] = (1.0f32 - 0.82).sqrt();
        let got: Vec<usize> = index
            .candidates(&q, 2, 1e-6)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert!(got.contains(&0) && got.contains(&1), "{got:?}");
        assert!(got.len() < 20, "nothing pruned: {got:?}");
    }
}
