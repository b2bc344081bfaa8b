//! edgecl's no_std core on a Cortex-M4F (QEMU mps2-an386, semihosting): learns class means from feature
//! vectors exported by the host build, classifies held-out vectors, checks the accuracy equals the std
//! build's, reads the state the std build wrote, writes its own, and exits with the result.
//!
//! Output (stdout through semihosting), one `key: value` a line: `firmware-tests/README.md`.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::mem::MaybeUninit;
use core::ptr::addr_of_mut;

use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use edgecl::nostd::quant::dequantise_i8;
use edgecl::nostd::state::{self as format, ModelRefOf, NcmHead, NoMemory, StateBodyOf};
use edgecl::nostd::table::{ClassTable, TableState};

mod dataset {
    include!(concat!(env!("OUT_DIR"), "/dataset.rs"));
}
use dataset::{CLASSES, DIM, FEATURES, HOST_STATE, NAMES, STD_CORRECT, TEST, TRAIN};

/// Longest class name or model path the firmware's state holds.
const S: usize = 256;
type State = TableState<DIM, CLASSES, S>;
/// `EDGECLFV` and four u32 counts.
const HEADER: usize = 24;
const RECORD: usize = 1 + 4 + DIM;
/// Requested cycles of the calibration loop (`main`).
const CALIBRATION: u32 = 4_000_000;
/// Room for the encoded state: header, names and path, sums (8 bytes a value) and counts.
const STATE_BYTES: usize = 1024 + CLASSES * (S + 8 * DIM + 16);

// Large values live in statics, not on the stack. The two tables are written before use, so they sit in
// cortex-m-rt's `.uninit` (RAM, no flash image, not zeroed at reset).
#[link_section = ".uninit.OWN"]
static mut OWN: MaybeUninit<ClassTable<DIM, CLASSES>> = MaybeUninit::uninit();
#[link_section = ".uninit.DECODED"]
static mut DECODED: MaybeUninit<State> = MaybeUninit::uninit();
static mut BUF: [u8; STATE_BYTES] = [0; STATE_BYTES];

/// Vector `i` of the data set (training vectors first): its label, dequantised into `out`.
fn vector(i: usize, out: &mut [f32; DIM]) -> usize {
    let r = &FEATURES[HEADER + i * RECORD..HEADER + (i + 1) * RECORD];
    let scale = f32::from_le_bytes([r[1], r[2], r[3], r[4]]);
    let q: &[i8] = unsafe { core::slice::from_raw_parts(r[5..].as_ptr().cast(), DIM) };
    dequantise_i8(q, scale, out);
    r[0] as usize
}

fn fail(what: &str) -> ! {
    hprintln!("FAIL: {}", what);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

fn check(ok: bool, what: &str) {
    if !ok {
        fail(what);
    }
}

/// Correct answers over the test vectors, and the SysTick ticks they took.
fn accuracy(table: &ClassTable<DIM, CLASSES>) -> (usize, u64) {
    let (mut correct, mut ticks) = (0, 0u64);
    let mut x = [0.0f32; DIM];
    let mut scores = [0.0f32; CLASSES];
    for i in TRAIN..TRAIN + TEST {
        // Timed: dequantise, normalise, score every class, pick the best.
        let start = cortex_m::peripheral::SYST::get_current();
        let label = vector(i, &mut x);
        let best = table.classify(&x, &mut scores);
        let end = cortex_m::peripheral::SYST::get_current();
        // SysTick counts down; it wraps after 2^24 ticks, far more than one classification takes.
        ticks += (start.wrapping_sub(end) & 0x00ff_ffff) as u64;
        correct += usize::from(best.map(|b| b.class) == Some(label));
    }
    (correct, ticks)
}

#[entry]
fn main() -> ! {
    let mut p = cortex_m::Peripherals::take().unwrap();
    p.SYST.set_clock_source(SystClkSource::Core);
    p.SYST.set_reload(0x00ff_ffff);
    p.SYST.clear_current();
    p.SYST.enable_counter();

    check(&FEATURES[..8] == b"EDGECLFV", "features.bin: bad magic");
    let u32_at = |o: usize| u32::from_le_bytes([FEATURES[o], FEATURES[o + 1], FEATURES[o + 2], FEATURES[o + 3]]) as usize;
    check(
        (u32_at(8), u32_at(12), u32_at(16), u32_at(20)) == (DIM, CLASSES, TRAIN, TEST),
        "features.bin disagrees with manifest.txt",
    );
    hprintln!("data: {} classes, {} training and {} test vectors of {} int8 values", CLASSES, TRAIN, TEST, DIM);

    // Calibrate: `cortex_m::asm::delay(n)` is a `subs; bne` loop of 1 + n/2 iterations, n + 2 instructions
    // in all; with `-icount` QEMU's virtual clock (which drives SysTick) advances by instruction count.
    let ticks_for = |n: u32| {
        let t0 = cortex_m::peripheral::SYST::get_current();
        cortex_m::asm::delay(n);
        let t1 = cortex_m::peripheral::SYST::get_current();
        (t0.wrapping_sub(t1) & 0x00ff_ffff) as u64
    };
    let (small, large) = (ticks_for(CALIBRATION / 4), ticks_for(CALIBRATION));
    // A clock that follows instructions is linear in the loop's length.
    check(small > 0 && large.abs_diff(4 * small) * 100 <= large, "SysTick does not follow the instruction count: run with -icount");
    let per_tick = (CALIBRATION as u64 + 2) as f32 / large as f32;
    hprintln!("clock: one SysTick tick is {} instructions (calibrated on a {}-instruction loop)", per_tick, CALIBRATION as u64 + 2);
    let instructions = |ticks: u64| ticks * (CALIBRATION as u64 + 2) / large;

    // Learn.
    let own = unsafe { (*addr_of_mut!(OWN)).write(ClassTable::new(DIM)) };
    for c in 0..CLASSES {
        check(own.add_class() == Ok(c), "class table full");
    }
    let mut x = [0.0f32; DIM];
    let t0 = cortex_m::peripheral::SYST::get_current();
    for i in 0..TRAIN {
        let label = vector(i, &mut x);
        own.learn(label, &x);
    }
    let t1 = cortex_m::peripheral::SYST::get_current();
    hprintln!(
        "learn: {} instructions per vector",
        instructions((t0.wrapping_sub(t1) & 0x00ff_ffff) as u64) / TRAIN as u64
    );

    // Classify the held-out vectors.
    let (correct, ticks) = accuracy(own);
    hprintln!("correct: {}/{} (std build: {})", correct, TEST, STD_CORRECT);
    hprintln!(
        "classify: {} instructions per vector (dequantise, normalise, {} cosines, argmax)",
        instructions(ticks) / TEST as u64,
        CLASSES
    );
    check(correct == STD_CORRECT, "accuracy differs from the std build's");

    // Read the std build's state: same names, bit-identical sums and counts.
    let host: State = match format::decode(HOST_STATE) {
        Ok(s) => s,
        Err(_) => fail("the std build's state does not decode"),
    };
    let host = unsafe { (*addr_of_mut!(DECODED)).write(host) };
    host.means.refresh();
    check(host.means.check().is_ok(), "the std build's class table is inconsistent");
    check(host.class_names.iter().map(|n| n.as_str()).eq(NAMES), "class names differ from the std build's");
    check(host.means == *own, "class sums or counts differ from the std build's");
    let (host_correct, _) = accuracy(&host.means);
    check(host_correct == STD_CORRECT, "the std build's state classifies differently");
    hprintln!("host-state: {} bytes, decoded, sums bit-identical to the firmware's", HOST_STATE.len());

    // Write a state of our own, for the host to decode, and round-trip it here.
    let mut names: heapless::Vec<heapless::String<S>, CLASSES> = heapless::Vec::new();
    for n in NAMES {
        let mut s: heapless::String<S> = heapless::String::new();
        check(s.push_str(n).is_ok() && names.push(s).is_ok(), "class name too long");
    }
    let mut memory: NoMemory<CLASSES> = NoMemory::new(DIM);
    (memory.budget, memory.storage) = (host.memory.budget, host.memory.storage);
    for _ in 0..CLASSES {
        check(memory.classes.push(heapless::Vec::new()).is_ok(), "memory table full");
    }
    let body: StateBodyOf<_, _, _, _, _> = StateBodyOf {
        model: ModelRefOf {
            name: host.model.name.clone(),
            sha256: host.model.sha256,
            dim: DIM as u32,
            path: host.model.path.clone(),
        },
        class_names: names,
        means: &*own,
        head: NcmHead::Ncm,
        memory,
        unknown_factor: host.unknown_factor,
    };
    let buf = unsafe { &mut *addr_of_mut!(BUF) };
    let n = match format::encode_into(&body, buf) {
        Ok(n) => n,
        Err(_) => fail("state buffer too small"),
    };
    let bytes = &buf[..n];
    hprintln!("own-state: {} bytes, identical to the std build's: {}", n, bytes == HOST_STATE);
    let mut back: State = match format::decode(bytes) {
        Ok(s) => s,
        Err(_) => fail("own state does not decode"),
    };
    back.means.refresh();
    check(back.means == *own && back.class_names == body.class_names, "own state does not round-trip");
    let mut line: heapless::String<160> = heapless::String::new();
    for chunk in bytes.chunks(64) {
        line.clear();
        for b in chunk {
            let _ = write!(line, "{b:02x}");
        }
        hprintln!("state-hex: {}", line.as_str());
    }
    hprintln!("PASS");
    debug::exit(debug::EXIT_SUCCESS);
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("FAIL: panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}
