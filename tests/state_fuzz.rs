//! Structured fuzzing of the state decoder behind its checksum.
//!
//! Byte-level bit flips and truncations (the unit tests in `src/state.rs`) stop at the CRC. Here valid
//! states of every head are mutated where it hurts (lengths and dimensions replaced by huge varints,
//! statistics by NaN, infinity and extreme values, bytes flipped, inserted, duplicated and cut) and the
//! header's length and CRC are recomputed, so every case reaches the decoder and the invariant checks.
//! For each case:
//!
//! - decoding returns `Ok` or `Err`, never panics, and allocates at most a fixed multiple of the file's
//!   size (a counting global allocator measures the peak);
//! - a state that decodes can be classified against, described, encoded and decoded again, and learnt
//!   from; what learning produces decodes again (nothing a command writes is unreadable).
//!
//! The cases are drawn by a fixed-seed generator, so a failure is reproducible; `EDGECL_FUZZ_CASES`
//! sets the number of cases per head (default 600, about a second) and `EDGECL_FUZZ_SEED` the seed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use edgecl::head::HeadConfig;
use edgecl::learner::{Learner, LearnerConfig};
use edgecl::memory::Storage;
use edgecl::state::{self, ModelRef, HEADER_LEN, MAGIC, VERSION};
use ndarray::Array2;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new) };
        if !q.is_null() {
            if new >= layout.size() {
                let now =
                    CURRENT.fetch_add(new - layout.size(), Ordering::Relaxed) + new - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// xorshift64*: a fixed, dependency-free stream of cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}

const DIM: usize = 8;

fn features(rng: &mut Rng, n: usize, centre: usize) -> Array2<f32> {
    Array2::from_shape_fn((n, DIM), |(_, j)| {
        rng.unit() + if j == centre % DIM { 2.0 } else { 0.0 }
    })
}

/// A valid state of the head `spec`: three classes of six captures (privacy's K is 5).
fn valid_state(spec: &str, rng: &mut Rng) -> Vec<u8> {
    let model = ModelRef {
        name: "fuzz".into(),
        sha256: [3; 32],
        dim: DIM as u32,
        path: "fuzz.onnx".into(),
    };
    let head: HeadConfig = spec.parse().unwrap();
    let mut learner = Learner::new(
        model,
        LearnerConfig {
            memory_budget: Some(1024),
            storage: Storage::Int8,
            head,
            ..LearnerConfig::default()
        },
    );
    for (c, name) in ["a", "b", "c"].into_iter().enumerate() {
        learner.learn(name, features(rng, 6, c).view()).unwrap();
    }
    learner.to_bytes()
}

/// LEB128 varint, as postcard writes lengths and integers.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

fn mutate(payload: &mut Vec<u8>, rng: &mut Rng) {
    const BIG: [u64; 8] = [
        1 << 16,
        1 << 20,
        (1 << 31) - 1,
        u32::MAX as u64,
        1 << 40,
        1 << 62,
        u64::MAX,
        0,
    ];
    const F32: [f32; 7] = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        1e-45,
        -0.0,
    ];
    const F64: [f64; 5] = [f64::NAN, f64::INFINITY, f64::MAX, -f64::MAX, 5e-324];
    let n = payload.len();
    let at = rng.below(n);
    match rng.below(8) {
        0 => payload[at] ^= 1 << rng.below(8),
        1 => payload[at] = rng.next() as u8,
        2 => {
            // Replace the varint at `at` with a huge one.
            let mut end = at;
            while end < n && payload[end] & 0x80 != 0 {
                end += 1;
            }
            let end = (end + 1).min(n);
            let big = varint(BIG[rng.below(BIG.len())]);
            payload.splice(at..end, big);
        }
        3 => {
            let bytes = F32[rng.below(F32.len())].to_le_bytes();
            let end = (at + 4).min(n);
            payload.splice(at..end, bytes);
        }
        4 => {
            let bytes = F64[rng.below(F64.len())].to_le_bytes();
            let end = (at + 8).min(n);
            payload.splice(at..end, bytes);
        }
        5 => payload.truncate(at),
        6 => {
            let len = rng.below(32) + 1;
            let from = rng.below(n);
            let chunk: Vec<u8> = payload[from..(from + len).min(n)].to_vec();
            payload.splice(at..at, chunk);
        }
        _ => {
            let len = rng.below(8) + 1;
            let junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            payload.splice(at..at, junk);
        }
    }
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// What decoding may allocate at most: a multiple of the file's size, plus a little for small files.
fn allowance(file_len: usize) -> usize {
    64 * file_len + (4 << 20)
}

/// Decodes under the allocation meter; panics are failures of the test.
fn decode_measured(bytes: &[u8], case: &str) -> Option<Learner> {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let result = catch_unwind(AssertUnwindSafe(|| Learner::from_bytes(bytes)))
        .unwrap_or_else(|_| panic!("{case}: decoding panicked"));
    let used = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    assert!(
        used <= allowance(bytes.len()),
        "{case}: decoding a {}-byte state allocated {used} bytes",
        bytes.len()
    );
    result.ok()
}

/// Uses a state that decoded the way the commands do.
fn exercise(mut learner: Learner, rng: &mut Rng, case: &str) {
    let d = learner.dim();
    catch_unwind(AssertUnwindSafe(|| {
        let q = Array2::from_shape_fn((2, d), |_| rng.unit());
        let _ = learner.classify(q.view(), 3);
        let _ = learner.info();
        let again = learner.to_bytes();
        if let Err(e) = Learner::from_bytes(&again) {
            panic!("{case}: a decoded state re-encodes to one that does not decode: {e}");
        }
        let x = Array2::from_shape_fn((6, d), |(_, j)| rng.unit() + (j == 0) as u8 as f32);
        if learner.learn("fuzz-new", x.view()).is_ok() {
            let after = learner.to_bytes();
            if let Err(e) = Learner::from_bytes(&after) {
                panic!(
                    "{case}: learning on a decoded state produced one that does not decode: {e}"
                );
            }
        }
        let _ = learner.forget("a");
    }))
    .unwrap_or_else(|_| panic!("{case}: using a decoded state panicked"));
}

#[test]
fn mutated_states_with_valid_checksums_never_panic_overallocate_or_produce_unreadable_states() {
    let cases: usize = std::env::var("EDGECL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let specs = [
        "ncm",
        "slda",
        "mahalanobis+min=4",
        "ranpac+m=16",
        "linear+replay+ewc=10+agem+lwf=1+epochs=3",
        "privacy+abd+adapter=4+dream=3+syn=8+epochs=3",
        "privacy+abd+eps=0.9+dream=0+syn=8+epochs=3",
        "privacy",
        "privacy+k=3+eps=0.9",
    ];
    let seed = std::env::var("EDGECL_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_ed9e_c1f0_0d5e_u64);
    let mut rng = Rng(seed | 1);
    let mut accepted = 0;
    for spec in specs {
        let valid = valid_state(spec, &mut rng);
        assert!(
            decode_measured(&valid, spec).is_some(),
            "{spec}: valid state refused"
        );
        for i in 0..cases {
            let mut payload = valid[HEADER_LEN..].to_vec();
            for _ in 0..1 + rng.below(3) {
                if payload.is_empty() {
                    break;
                }
                mutate(&mut payload, &mut rng);
            }
            let bytes = framed(&payload);
            let case = format!("{spec} case {i}");
            if let Some(learner) = decode_measured(&bytes, &case) {
                accepted += 1;
                exercise(learner, &mut rng, &case);
            }
        }
    }
    // Some mutations land in values any number may take (a feature, a weight): those states are
    // accepted, and must be usable. None accepted would mean the mutations never got past the checks.
    assert!(accepted > 0);
    eprintln!(
        "{accepted} of {} mutated states decoded",
        cases * specs.len()
    );
}

#[test]
fn a_current_state_round_trips_through_the_fuzz_framing() {
    // The framing above is the real header: an unmutated payload decodes to the same bytes.
    let mut rng = Rng(7);
    let valid = valid_state("ncm", &mut rng);
    let again = framed(&valid[HEADER_LEN..]);
    assert_eq!(again, valid);
    assert!(state::decode(&again).is_ok());
}
