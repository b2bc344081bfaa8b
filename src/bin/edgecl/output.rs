//! What the CLI prints: stdout that may close early, text from files made safe for a terminal, progress
//! bars, and the runtime and memory lines.
//!
//! A command's work is done before it prints (a state is saved before "learned ..." is written), so a
//! stdout that fails (`edgecl learn ... | head -c 0`, a full disk behind a redirect) must not turn a
//! successful run into a crash or an error: a script would retry it and learn the captures twice. The
//! exit code keeps saying what happened to the state; the first failure to print is noted on stderr
//! (a closed pipe silently, as other Unix tools do).

use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use edgecl::embed::Embedder;
use indicatif::{ProgressBar, ProgressStyle};

static FAILED: AtomicBool = AtomicBool::new(false);

/// Writes one line on stdout (see the module docs for what happens when that fails).
pub fn line(args: fmt::Arguments) {
    if FAILED.load(Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        FAILED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("edgecl: warning: cannot write to stdout ({e}); the command's work is done and kept");
        }
    }
}

/// `println!` for the CLI: never panics when stdout is closed.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

/// Text read from a file (a model card's name, a path stored in a state) as it may be shown on a
/// terminal: control and bidirectional formatting characters escaped (`\u{1b}`), so a crafted file
/// cannot move the cursor, recolour the terminal or make one text display as another.
pub fn safe(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // The characters class names may not contain are the ones that deceive on a terminal.
        if edgecl::class_name::hidden(c).is_some() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::safe;

    #[test]
    fn escape_sequences_and_bidi_overrides_are_shown_not_obeyed() {
        assert_eq!(safe("m\u{1b}[2Jx"), "m\\u{1b}[2Jx");
        assert_eq!(safe("\u{202e}gum"), "\\u{202e}gum");
        assert_eq!(safe("a\nb\tc"), "a\\u{a}b\\u{9}c");
        assert_eq!(safe("кружка 🍵"), "кружка 🍵");
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal or with --quiet.
pub fn progress(len: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() || len < 32 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// The one-line description of the runtime in use.
pub fn runtime_line(e: &Embedder) -> String {
    let r = e.runtime();
    match &r.library {
        Some(lib) => format!(
            "{} ({}, {}, {} threads)",
            r.runtime,
            r.version,
            lib.display(),
            r.threads
        ),
        None => format!("{} ({}, {} threads)", r.runtime, r.version, r.threads),
    }
}

/// Peak resident memory of this process so far (Linux `VmHWM`), in bytes; `None` elsewhere.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
