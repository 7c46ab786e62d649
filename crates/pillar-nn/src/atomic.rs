//! Files replaced whole or not at all. A process killed while writing (or a full disk) must
//! not leave a truncated model, metrics or checkpoint where a good one was: every file pillar
//! writes goes to a temporary file in the same directory, is flushed to disk, then renamed
//! over the target, which POSIX makes atomic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |tmp| std::fs::File::create_new(tmp)?.write_all(bytes))
}

/// Lets `write` produce the file at a temporary path (same directory and extension as `path`,
/// for writers that pick the format by extension, as plotting libraries do), then moves it
/// over `path`. On any error the temporary file is removed and `path` is untouched.
pub fn write_atomic_with<E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = temporary_path(path);
    // Flushed here, once, whoever wrote it (opened for writing: some systems flush no file
    // opened only to read).
    let flush = |tmp: &Path| -> std::io::Result<()> {
        std::fs::OpenOptions::new()
            .write(true)
            .open(tmp)?
            .sync_all()
    };
    let result = write(&tmp)
        .and_then(|()| Ok(flush(&tmp)?))
        .and_then(|()| Ok(std::fs::rename(&tmp, path)?));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `.NAME.PID-N.tmp.EXT` next to `path`: hidden, unique within this process and across
/// processes, and with `path`'s extension last.
fn temporary_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let stem = path
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    let name = format!(".{stem}.{}-{n}.tmp{ext}", std::process::id());
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
        _ => PathBuf::from(name),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let dir = std::env::temp_dir().join(format!("pillar-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("model.onnx");
        write_atomic(&path, b"old").unwrap();
        let failed: std::io::Result<()> = write_atomic_with(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(names.len(), 1, "temporary files left: {names:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
