//! The no_std core: the part of edgecl a microcontroller runs, and the same code the std build runs.
//!
//! Everything here works on slices and fixed-capacity [`heapless`] containers, without an allocator:
//!
//! | module | what it is | std user |
//! | --- | --- | --- |
//! | [`ncm`] | nearest-class-mean arithmetic: sums, renormalised means, cosine, top-k, the unknown rule | [`crate::head::Ncm`] |
//! | [`quant`] | int8 (one scale per vector) and f16 encodings of a feature vector | [`crate::memory`] |
//! | [`state`] | the state file's header (magic, version, length, CRC-32) and payload layout | [`crate::state`] |
//! | [`table`] | a fixed-capacity NCM class table whose postcard encoding is the std state's | firmware |
//!
//! The std build batches and parallelises around these functions (ndarray, rayon); it does not keep a
//! second copy of them. `firmware-tests/` runs this module on a Cortex-M4 (QEMU) and checks that it
//! reaches the std build's accuracy and reads and writes the std build's state bytes.
//!
//! ```
//! use edgecl::nostd::table::ClassTable;
//! let mut table: ClassTable<3, 4> = ClassTable::new(3);
//! let a = table.add_class().unwrap();
//! let b = table.add_class().unwrap();
//! table.learn(a, &[1.0, 0.1, 0.0]);
//! table.learn(b, &[0.0, 1.0, 0.2]);
//! let mut scores = [0.0; 4];
//! let best = table.classify(&[0.9, 0.2, 0.0], &mut scores).unwrap();
//! assert_eq!(best.class, a);
//! ```
#![deny(clippy::std_instead_of_core, clippy::std_instead_of_alloc)]

pub mod ncm;
pub mod quant;
pub mod state;
pub mod table;
