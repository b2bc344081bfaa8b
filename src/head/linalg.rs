//! The little dense linear algebra the closed-form heads need: Cholesky factorisation and solves on
//! symmetric positive-definite `n x n` matrices, the inverse of a triangular factor, and a packed
//! (upper-triangle) encoding for symmetric matrices in the state file.
//!
//! Why not LAPACK: it needs a system library and a Fortran toolchain to cross-compile for a Jetson or a Pi;
//! these routines are plain Rust over ndarray and run anywhere the crate builds. They work in f64: a
//! covariance or Gram matrix summed over thousands of samples is ill-conditioned enough that f32 pivots
//! go wrong.
//!
//! ```
//! use edgecl::head::linalg::{cholesky, cholesky_solve};
//! use ndarray::array;
//! let mut a = array![[4.0, 2.0], [2.0, 3.0]];
//! cholesky(&mut a).unwrap();
//! let mut b = array![[2.0], [1.0]];
//! cholesky_solve(&a, &mut b);
//! assert!((b[[0, 0]] - 0.5).abs() < 1e-12 && b[[1, 0]].abs() < 1e-12);
//! ```

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Dot product of two equal-length slices with four accumulators (lets the compiler vectorise).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let chunks = n / 4;
    for i in 0..chunks {
        for k in 0..4 {
            acc[k] += a[4 * i + k] * b[4 * i + k];
        }
    }
    let mut s = acc[0] + acc[1] + acc[2] + acc[3];
    for i in 4 * chunks..n {
        s += a[i] * b[i];
    }
    s
}

/// Factorises a symmetric positive-definite matrix in place: on success the lower triangle holds `L`
/// with `A = L L'` and the strict upper triangle is zeroed. Reads only the lower triangle of `a`.
/// On failure returns the index of the first pivot that was not positive (`a` is then garbage).
pub fn cholesky(a: &mut Array2<f64>) -> Result<(), usize> {
    let n = a.nrows();
    assert_eq!(n, a.ncols(), "cholesky needs a square matrix");
    if !a.is_standard_layout() {
        *a = a.as_standard_layout().into_owned();
    }
    let s = a.as_slice_mut().expect("standard layout");
    for j in 0..n {
        let (before, from_j) = s.split_at_mut(j * n);
        let row_j = &mut from_j[..n];
        let d = row_j[j] - dot(&row_j[..j], &row_j[..j]);
        if d <= 0.0 || !d.is_finite() {
            return Err(j);
        }
        let pivot = d.sqrt();
        row_j[j] = pivot;
        row_j[j + 1..].iter_mut().for_each(|x| *x = 0.0);
        let _ = before;
        // Rows below j: L[i][j] = (A[i][j] - L[i][..j].L[j][..j]) / L[j][j].
        let (upto, below) = s.split_at_mut((j + 1) * n);
        let lj = &upto[j * n..j * n + j];
        for i in j + 1..n {
            let row_i = &mut below[(i - j - 1) * n..(i - j) * n];
            row_i[j] = (row_i[j] - dot(&row_i[..j], lj)) / pivot;
        }
    }
    Ok(())
}

/// Factorises `a + jitter I`, raising the jitter (from `1e-10` of the mean diagonal, by x10) until the
/// factorisation succeeds: for matrices that are positive semi-definite up to rounding. Returns the
/// factor and the jitter used (0 when none was needed). A matrix that no jitter up to `1e50` times its
/// mean diagonal makes positive definite (only a tampered state holds one) gets a factor of NaNs, which
/// the learner's consistency check refuses; it never loops for ever.
pub fn cholesky_jittered(a: &Array2<f64>) -> (Array2<f64>, f64) {
    let n = a.nrows();
    let mean_diag = (0..n).map(|i| a[[i, i]].abs()).sum::<f64>() / n.max(1) as f64;
    let mut jitter = 0.0;
    for _ in 0..62 {
        let mut l = a.clone();
        for i in 0..n {
            l[[i, i]] += jitter;
        }
        if cholesky(&mut l).is_ok() {
            return (l, jitter);
        }
        jitter = if jitter == 0.0 {
            mean_diag.max(1e-300) * 1e-10
        } else {
            jitter * 10.0
        };
    }
    (Array2::from_elem((n, n), f64::NAN), f64::INFINITY)
}

/// Solves `L L' X = B` in place (`b` becomes `X`), `l` the lower factor from [`cholesky`].
pub fn cholesky_solve(l: &Array2<f64>, b: &mut Array2<f64>) {
    let n = l.nrows();
    assert_eq!(b.nrows(), n, "right-hand side has the wrong number of rows");
    let mut col = vec![0.0f64; n];
    for k in 0..b.ncols() {
        for i in 0..n {
            col[i] = b[[i, k]];
        }
        // Forward: L y = b.
        for i in 0..n {
            let li = l.row(i);
            let li = li.as_slice().expect("standard layout");
            col[i] = (col[i] - dot(&li[..i], &col[..i])) / li[i];
        }
        // Back: L' x = y.
        for i in (0..n).rev() {
            let mut s = col[i];
            for r in i + 1..n {
                s -= l[[r, i]] * col[r];
            }
            col[i] = s / l[[i, i]];
        }
        for i in 0..n {
            b[[i, k]] = col[i];
        }
    }
}

/// The inverse of a lower-triangular matrix (itself lower-triangular).
pub fn lower_inverse(l: &Array2<f64>) -> Array2<f64> {
    let n = l.nrows();
    // Column j of L^-1 solves L x = e_j; it is zero above j. Work on rows of the transpose so the
    // inner products run over contiguous memory.
    let mut inv_t = Array2::<f64>::zeros((n, n)); // inv_t[j][i] = (L^-1)[i][j]
    for j in 0..n {
        let x = inv_t.row_mut(j).into_slice().expect("standard layout");
        x[j] = 1.0 / l[[j, j]];
        for i in j + 1..n {
            let li = l.row(i);
            let li = li.as_slice().expect("standard layout");
            x[i] = -dot(&li[j..i], &x[j..i]) / li[i];
        }
    }
    inv_t.reversed_axes().as_standard_layout().into_owned()
}

/// Packs the upper triangle (row by row, diagonal included) of a symmetric matrix.
pub fn pack(a: ArrayView2<f64>) -> Vec<f64> {
    let n = a.nrows();
    let mut out = Vec::with_capacity(n * (n + 1) / 2);
    for i in 0..n {
        out.extend(a.row(i).iter().skip(i));
    }
    out
}

/// The symmetric `n x n` matrix whose packed upper triangle is `packed`; `None` if the length is wrong.
pub fn unpack(n: usize, packed: &[f64]) -> Option<Array2<f64>> {
    // Checked: on 32-bit targets an n read from a file could wrap the product to a small length.
    let want = n
        .checked_add(1)
        .and_then(|m| m.checked_mul(n))
        .map(|p| p / 2);
    if want != Some(packed.len()) {
        return None;
    }
    let mut a = Array2::zeros((n, n));
    let mut k = 0;
    for i in 0..n {
        for j in i..n {
            a[[i, j]] = packed[k];
            a[[j, i]] = packed[k];
            k += 1;
        }
    }
    Some(a)
}

/// A symmetric f64 matrix, stored in the state file as its packed upper triangle (half the bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Symmetric(pub Array2<f64>);

impl Symmetric {
    pub fn zeros(n: usize) -> Self {
        Symmetric(Array2::zeros((n, n)))
    }

    pub fn dim(&self) -> usize {
        self.0.nrows()
    }
}

impl Serialize for Symmetric {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (self.0.nrows() as u32, pack(self.0.view())).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Symmetric {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (n, packed): (u32, Vec<f64>) = Deserialize::deserialize(d)?;
        unpack(n as usize, &packed)
            .map(Symmetric)
            .ok_or_else(|| serde::de::Error::custom("packed symmetric matrix has the wrong length"))
    }
}

/// A row-major f64 matrix in the state file: rows, cols, values.
pub mod matrix_f64 {
    use super::*;

    pub fn serialize<S: Serializer>(a: &Array2<f64>, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<f64> = a.iter().copied().collect();
        (a.nrows() as u32, a.ncols() as u32, v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Array2<f64>, D::Error> {
        let (r, c, v): (u32, u32, Vec<f64>) = Deserialize::deserialize(d)?;
        Array2::from_shape_vec((r as usize, c as usize), v)
            .map_err(|_| serde::de::Error::custom("matrix has the wrong number of values"))
    }
}

/// A row-major f32 matrix in the state file: rows, cols, values.
pub mod matrix_f32 {
    use super::*;

    pub fn serialize<S: Serializer>(a: &Array2<f32>, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<f32> = a.iter().copied().collect();
        (a.nrows() as u32, a.ncols() as u32, v).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Array2<f32>, D::Error> {
        let (r, c, v): (u32, u32, Vec<f32>) = Deserialize::deserialize(d)?;
        Array2::from_shape_vec((r as usize, c as usize), v)
            .map_err(|_| serde::de::Error::custom("matrix has the wrong number of values"))
    }
}

/// Centred scatter `sum (x - m)(x - m)'` and mean `m` of the rows of `x`, in f64.
pub fn scatter(x: ArrayView2<f32>) -> (Vec<f64>, Array2<f64>) {
    let n = x.nrows().max(1) as f64;
    let d = x.ncols();
    let mut mean = vec![0.0f64; d];
    for row in x.rows() {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n);
    let centred = Array2::from_shape_fn(x.raw_dim(), |(i, j)| x[[i, j]] as f64 - mean[j]);
    (mean, centred.t().dot(&centred))
}

/// Merges a batch (count `nb`, mean `mb`, centred scatter `sb`) into running statistics (count `n`,
/// mean `m`, scatter `s`): the parallel form of Welford's update (Chan et al. 1979), exact in any order.
pub fn merge_scatter(
    n: u64,
    m: &mut [f64],
    s: &mut Array2<f64>,
    nb: u64,
    mb: &[f64],
    sb: &Array2<f64>,
) {
    if nb == 0 {
        return;
    }
    *s += sb;
    merge_means(n, m, s, nb, mb);
}

/// The part of [`merge_scatter`] that joins two groups' means: `s += n nb / (n + nb) d d'` with
/// `d = mb - m`, and `m` becomes the joint mean. With `s` the sum of the two groups' centred scatters,
/// the result is the joint group's centred scatter (merging two classes into one).
pub fn merge_means(n: u64, m: &mut [f64], s: &mut Array2<f64>, nb: u64, mb: &[f64]) {
    if nb == 0 {
        return;
    }
    let (na, nbf) = (n as f64, nb as f64);
    let total = na + nbf;
    let delta: Vec<f64> = mb.iter().zip(m.iter()).map(|(b, a)| b - a).collect();
    let w = na * nbf / total;
    if n > 0 {
        for (i, mut row) in s.rows_mut().into_iter().enumerate() {
            let di = w * delta[i];
            for (v, dj) in row.iter_mut().zip(&delta) {
                *v += di * dj;
            }
        }
    }
    for (a, b) in m.iter_mut().zip(mb) {
        *a = (na * *a + nbf * b) / total;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn cholesky_of_the_textbook_matrix() {
        // The worked example on Wikipedia's Cholesky page: A = L L' with L = [[2,0,0],[6,1,0],[-8,5,3]].
        let mut a = array![
            [4.0, 12.0, -16.0],
            [12.0, 37.0, -43.0],
            [-16.0, -43.0, 98.0]
        ];
        cholesky(&mut a).unwrap();
        let l = array![[2.0, 0.0, 0.0], [6.0, 1.0, 0.0], [-8.0, 5.0, 3.0]];
        assert!((&a - &l).iter().all(|d| d.abs() < 1e-12), "{a}");
        // A x = b with x = (1, 2, 3): b = (-20, -43, 192), worked by hand.
        let mut b = array![[-20.0], [-43.0], [192.0]];
        cholesky_solve(&a, &mut b);
        for (got, want) in b.iter().zip([1.0, 2.0, 3.0]) {
            assert!((got - want).abs() < 1e-10, "{b}");
        }
        // L^-1 times L is the identity.
        let inv = lower_inverse(&a);
        let eye = inv.dot(&l);
        for i in 0..3 {
            for j in 0..3 {
                assert!((eye[[i, j]] - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn a_matrix_that_is_not_positive_definite_is_refused_at_its_pivot() {
        let mut a = array![[1.0, 2.0], [2.0, 1.0]];
        assert_eq!(cholesky(&mut a), Err(1));
        // Jitter makes a singular PSD matrix factorisable.
        let (l, jitter) = cholesky_jittered(&array![[1.0, 1.0], [1.0, 1.0]]);
        assert!(jitter > 0.0 && l[[1, 1]] > 0.0);
    }

    #[test]
    fn solves_a_random_spd_system_against_a_direct_product() {
        // A = M M' + I is SPD; check A x = b by multiplying back.
        let n = 37;
        let m = Array2::from_shape_fn((n, n), |(i, j)| {
            ((i * 31 + j * 17) % 13) as f64 / 13.0 - 0.5
        });
        let a = m.dot(&m.t()) + Array2::<f64>::eye(n);
        let b = Array2::from_shape_fn((n, 3), |(i, k)| (i + k) as f64);
        let mut l = a.clone();
        cholesky(&mut l).unwrap();
        let mut x = b.clone();
        cholesky_solve(&l, &mut x);
        let back = a.dot(&x);
        assert!((&back - &b).iter().all(|d| d.abs() < 1e-9));
    }

    #[test]
    fn packing_round_trips() {
        let a = array![[1.0, 2.0, 3.0], [2.0, 4.0, 5.0], [3.0, 5.0, 6.0]];
        let p = pack(a.view());
        assert_eq!(p, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(unpack(3, &p).unwrap(), a);
        assert!(unpack(4, &p).is_none());
    }

    #[test]
    fn merged_scatter_equals_the_scatter_of_all_rows() {
        let x = array![
            [1.0f32, 2.0],
            [3.0, 1.0],
            [0.0, 5.0],
            [2.0, 2.0],
            [4.0, -1.0]
        ];
        // Reference by hand-rolled definition: mean, then sum of outer products.
        let mean = [10.0 / 5.0, 9.0 / 5.0];
        let mut want = Array2::<f64>::zeros((2, 2));
        for r in x.rows() {
            let d = [r[0] as f64 - mean[0], r[1] as f64 - mean[1]];
            for i in 0..2 {
                for j in 0..2 {
                    want[[i, j]] += d[i] * d[j];
                }
            }
        }
        let (ma, sa) = scatter(x.slice(ndarray::s![..2, ..]));
        let (mb, sb) = scatter(x.slice(ndarray::s![2.., ..]));
        let (mut m, mut s) = (ma, sa);
        merge_scatter(2, &mut m, &mut s, 3, &mb, &sb);
        assert!((&s - &want).iter().all(|d| d.abs() < 1e-12), "{s}");
        assert!((m[0] - mean[0]).abs() < 1e-12 && (m[1] - mean[1]).abs() < 1e-12);
    }
}
