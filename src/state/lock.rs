//! One writer at a time: an advisory lock on a lock file beside the state.
//!
//! Every command that writes a state takes the lock before it loads the state and keeps it until the
//! rename that replaces the file ([`super::save`] takes the lock as an argument, so nothing writes without
//! it). Readers do not lock: a save is a rename, so they see the old file or the new one, never a mix.
//!
//! The lock file is `.NAME.lock` in the directory of the state's real path (a symlinked state and its
//! target share one lock). It is locked with the operating system's advisory file lock (`flock` on Unix,
//! through `std::fs::File::lock`), which the kernel releases when the holder exits or dies, so a crashed
//! writer never leaves a stale lock. The holder writes its pid into the file so that a writer that
//! gives up can say who holds it. The lock file is opened without following symlinks and is never
//! deleted (deleting a lock file lets two writers lock two different files).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// How long a writer waits for another by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The held lock; dropping it releases it.
#[derive(Debug)]
pub struct StateLock {
    file: File,
    /// The state's real path (symlinks resolved): where saves go.
    target: PathBuf,
}

impl StateLock {
    /// Takes the lock of the state at `path` (which need not exist yet), waiting up to `timeout` for the
    /// writer that holds it. The error names the holder's pid.
    pub fn acquire(path: &Path, timeout: Duration) -> Result<StateLock> {
        let target = resolve(path)?;
        let lock_path = lock_path(&target)?;
        let file = open_lock_file(&lock_path)?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        return Err(Error::Locked {
                            path: path.to_path_buf(),
                            holder: holder(&file),
                            waited: start.elapsed(),
                        });
                    }
                    std::thread::sleep(pause.min(timeout.saturating_sub(start.elapsed())));
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
            }
        }
        let mut lock = StateLock { file, target };
        lock.write_pid().map_err(|e| Error::io(&lock_path, e))?;
        Ok(lock)
    }

    /// The state's real path, symlinks resolved.
    pub fn target(&self) -> &Path {
        &self.target
    }

    fn write_pid(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "{}", std::process::id())
    }
}

/// The pid the lock's holder wrote, if it could be read.
fn holder(file: &File) -> Option<u32> {
    let mut text = String::new();
    let mut f = file;
    f.rewind().ok()?;
    f.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// The real path of a state file: symlinks followed (also a dangling one, whose target is where a new
/// state is created), at most 40 deep.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&p).map_err(|e| Error::io(&p, e))?;
                p = match p.parent() {
                    Some(dir) => dir.join(link),
                    None => link,
                };
            }
            Ok(_) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(p),
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Err(Error::State {
        path: path.to_path_buf(),
        message: "too many levels of symbolic links".into(),
    })
}

/// The directory a state lives in and its file name.
pub fn split(target: &Path) -> Result<(PathBuf, String)> {
    let name = target
        .file_name()
        .ok_or_else(|| Error::State {
            path: target.to_path_buf(),
            message: "not a file path".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name))
}

fn lock_path(target: &Path) -> Result<PathBuf> {
    let (dir, name) = split(target)?;
    Ok(dir.join(format!(".{name}.lock")))
}

fn open_lock_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // A symlink planted at the lock's name must not make us write a pid into its target.
        options.custom_flags(libc::O_NOFOLLOW).mode(0o644);
    }
    options.open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            Error::State {
                path: path.to_path_buf(),
                message: "the lock file is a symbolic link; refusing to follow it".into(),
            }
        } else {
            Error::io(path, e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_waits_then_fails_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.edgecl");
        let held = StateLock::acquire(&state, Duration::ZERO).unwrap();
        let t = Instant::now();
        let e = StateLock::acquire(&state, Duration::from_millis(200)).unwrap_err();
        assert!(t.elapsed() >= Duration::from_millis(200));
        let message = e.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        drop(held);
        StateLock::acquire(&state, Duration::ZERO).unwrap();
    }

    #[test]
    fn a_waiting_writer_gets_the_lock_when_it_is_released() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.edgecl");
        let held = StateLock::acquire(&state, Duration::ZERO).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
        });
        StateLock::acquire(&state, Duration::from_secs(5)).unwrap();
        releaser.join().unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_state_and_its_target_share_one_lock() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.edgecl");
        let link = dir.path().join("link.edgecl");
        std::os::unix::fs::symlink("real.edgecl", &link).unwrap();
        let held = StateLock::acquire(&link, Duration::ZERO).unwrap();
        assert_eq!(held.target(), real);
        assert!(StateLock::acquire(&real, Duration::ZERO).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_symlink_at_the_lock_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(".s.edgecl.lock")).unwrap();
        let e = StateLock::acquire(&dir.path().join("s.edgecl"), Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
    }
}
