//! A nearest-class-mean class table with its capacity in the type: up to `C` classes of `D`-wide
//! features, no allocator. Its postcard encoding is the std [`Ncm`](crate::head::Ncm)'s (`dim`, the
//! class sums, the counts), so a table can be the `means` of a std-readable state.

use serde::{Deserialize, Serialize};

use super::ncm;
use super::state::{NcmHead, NoMemory, StateBodyOf};

/// A whole state file's payload with a [`ClassTable`] as its class statistics, NCM as its head and no
/// stored features: what firmware reads and writes. Strings hold up to `S` bytes. The std build reads
/// these bytes as its `StateBody`, and a std state made with NCM and `--memory-budget 0` decodes as this.
pub type TableState<const D: usize, const C: usize, const S: usize> = StateBodyOf<
    heapless::String<S>,
    heapless::Vec<heapless::String<S>, C>,
    ClassTable<D, C>,
    NcmHead,
    NoMemory<C>,
>;

/// No room for another class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The nearest class for a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nearest {
    pub class: usize,
    /// Cosine similarity to the class mean.
    pub score: f32,
    /// Euclidean distance between the normalised query and the normalised class mean (0..=2).
    pub distance: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassTable<const D: usize, const C: usize> {
    dim: usize,
    sums: heapless::Vec<heapless::Vec<f64, D>, C>,
    counts: heapless::Vec<u64, C>,
    /// Renormalised means (derived from the sums; rebuilt by [`ClassTable::refresh`] after a decode).
    #[serde(skip)]
    means: heapless::Vec<[f32; D], C>,
    /// `||m_c||^2` of each raw mean (derived).
    #[serde(skip)]
    raw_norm2: heapless::Vec<f64, C>,
}

impl<const D: usize, const C: usize> ClassTable<D, C> {
    /// An empty table for `dim`-wide features.
    ///
    /// # Panics
    /// If `dim > D` (a const fn, so a `static` initialiser fails at compile time).
    pub const fn new(dim: usize) -> Self {
        assert!(dim <= D, "dim exceeds the table's capacity D");
        ClassTable {
            dim,
            sums: heapless::Vec::new(),
            counts: heapless::Vec::new(),
            means: heapless::Vec::new(),
            raw_norm2: heapless::Vec::new(),
        }
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn classes(&self) -> usize {
        self.counts.len()
    }

    pub fn count(&self, class: usize) -> u64 {
        self.counts[class]
    }

    /// The class's f64 sum of normalised features.
    pub fn sum(&self, class: usize) -> &[f64] {
        &self.sums[class]
    }

    /// Appends an empty class; `Err(Full)` when the table holds `C` classes.
    pub fn add_class(&mut self) -> Result<usize, Full> {
        if self.counts.is_full() {
            return Err(Full);
        }
        let mut zeros = heapless::Vec::new();
        zeros.resize(self.dim, 0.0).map_err(|_| Full)?;
        self.sums.push(zeros).map_err(|_| Full)?;
        self.counts.push(0).map_err(|_| Full)?;
        self.means.push([0.0; D]).map_err(|_| Full)?;
        self.raw_norm2.push(0.0).map_err(|_| Full)?;
        Ok(self.counts.len() - 1)
    }

    /// Learns one raw feature vector (`dim` values; normalised here).
    pub fn learn(&mut self, class: usize, feature: &[f32]) {
        let mut x = [0.0f32; D];
        let x = &mut x[..self.dim];
        x.copy_from_slice(feature);
        ncm::normalise(x);
        self.learn_normalised(class, x);
    }

    /// Learns one L2-normalised feature vector.
    pub fn learn_normalised(&mut self, class: usize, feature: &[f32]) {
        ncm::accumulate(&mut self.sums[class], feature);
        self.counts[class] += 1;
        self.refresh_class(class);
    }

    /// Cosine of an L2-normalised query to every class mean into `scores[..classes]`.
    pub fn scores(&self, query: &[f32], scores: &mut [f32]) {
        for (s, m) in scores.iter_mut().zip(&self.means) {
            *s = ncm::dot(&m[..self.dim], query);
        }
    }

    /// The nearest class to a raw query (`None` with no classes); `scores` gets every class's cosine.
    pub fn classify(&self, query: &[f32], scores: &mut [f32; C]) -> Option<Nearest> {
        let mut x = [0.0f32; D];
        let x = &mut x[..self.dim];
        x.copy_from_slice(query);
        ncm::normalise(x);
        let n = self.classes();
        self.scores(x, &mut scores[..n]);
        let mut order = [0usize; C];
        let &class = ncm::top_k(&scores[..n], &mut order[..n], 1).first()?;
        Some(Nearest {
            class,
            score: scores[class],
            distance: ncm::distance(scores[class]),
        })
    }

    /// Whether `nearest` lies beyond its class's unknown threshold for `factor` (see
    /// [`ncm::thresholds`]).
    pub fn is_unknown(&self, nearest: &Nearest, factor: f32) -> bool {
        let mut limits = [None; C];
        let n = self.classes();
        ncm::thresholds(&self.counts, &self.raw_norm2, factor, &mut limits[..n]);
        limits[nearest.class].is_some_and(|l| {
            ncm::distance2_to_raw_mean(self.raw_norm2[nearest.class], nearest.score) > l
        })
    }

    /// Rebuilds the derived means after a decode.
    pub fn refresh(&mut self) {
        self.means.clear();
        self.raw_norm2.clear();
        for _ in 0..self.classes() {
            // Cannot fail: both have the capacity of `counts`.
            let _ = self.means.push([0.0; D]);
            let _ = self.raw_norm2.push(0.0);
        }
        for c in 0..self.classes() {
            self.refresh_class(c);
        }
    }

    fn refresh_class(&mut self, class: usize) {
        self.raw_norm2[class] = ncm::renormalised_mean(
            &self.sums[class],
            self.counts[class],
            &mut self.means[class][..self.dim],
        );
    }

    /// Consistency of a decoded table: as many sums as counts, every sum `dim` wide and finite, every
    /// count positive.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.dim > D {
            return Err("feature width exceeds the table's capacity");
        }
        if self.sums.len() != self.counts.len() {
            return Err("class sums and counts differ in number");
        }
        for (s, &n) in self.sums.iter().zip(&self.counts) {
            if s.len() != self.dim {
                return Err("a class sum is not dim wide");
            }
            if n == 0 || s.iter().any(|v| !v.is_finite()) {
                return Err("a class has count 0 or a non-finite sum");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_refuses_another_class() {
        let mut t: ClassTable<2, 2> = ClassTable::new(2);
        assert_eq!(t.add_class(), Ok(0));
        assert_eq!(t.add_class(), Ok(1));
        assert_eq!(t.add_class(), Err(Full));
    }

    #[test]
    fn decode_then_refresh_restores_the_means() {
        let mut t: ClassTable<3, 4> = ClassTable::new(3);
        for (c, x) in [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]
            .iter()
            .enumerate()
        {
            assert_eq!(t.add_class(), Ok(c));
            t.learn(c, x);
            t.learn(c, &[0.1, 0.1, 0.1]);
        }
        let bytes = postcard::to_allocvec(&t).unwrap();
        let mut back: ClassTable<3, 4> = postcard::from_bytes(&bytes).unwrap();
        assert_ne!(back, t);
        back.refresh();
        assert_eq!(back, t);
        let mut scores = [0.0; 4];
        assert_eq!(t.classify(&[0.0, 0.1, 5.0], &mut scores).unwrap().class, 2);
    }
}
