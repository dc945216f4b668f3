//! The data-directory lock: one process per data directory.
//!
//! The lock is an exclusive `flock` on the open **directory** itself, so it belongs to the
//! directory's inode, not to a name in it: deleting or replacing `DIR/LOCK` under a running
//! server cannot let a second process in (it could when the lock was on the `LOCK` file
//! alone — the second instance created a new file of that name and locked that). The `LOCK`
//! file is still created and locked as well, for older binaries that only know it and for
//! operators who look for it; it is never what decides.
//!
//! `flock` rather than `fcntl` record locks: an `fcntl` lock is dropped when the process closes
//! *any* descriptor of the file, and is not held per open file description. No crate: this is
//! two `flock` calls (`fs2`/`fd-lock` wrap the same syscall for files, not directories).

use std::fs::{File, OpenOptions};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::StorageError;

/// The name of the advisory lock file inside the data directory.
pub const LOCK_FILE: &str = "LOCK";

/// A held data-directory lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DirLock {
    _dir: File,
    _file: Option<File>,
}

/// What to do about the `LOCK` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFile {
    /// Create it if missing and lock it too (the server).
    Create,
    /// Lock it if it exists (offline tools, which must not leave files behind).
    IfPresent,
}

/// Takes the lock on `dir`, or fails with [`StorageError::Locked`] when another process
/// (or another open of this directory in this process) holds it.
pub fn lock_dir(dir: &Path, file: LockFile) -> Result<DirLock, StorageError> {
    let lock_path = dir.join(LOCK_FILE);
    let dir_file = File::open(dir).map_err(|e| StorageError::io(dir, e))?;
    flock(&dir_file, dir, dir, &lock_path)?;
    let file = match file {
        LockFile::Create => Some(
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .read(true)
                .open(&lock_path)
                .map_err(|e| StorageError::io(&lock_path, e))?,
        ),
        LockFile::IfPresent => match File::open(&lock_path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(StorageError::io(&lock_path, e)),
        },
    };
    if let Some(f) = &file {
        flock(f, &lock_path, dir, &lock_path)?;
    }
    Ok(DirLock {
        _dir: dir_file,
        _file: file,
    })
}

/// An exclusive, non-blocking flock on `f` (which is `what`).
fn flock(f: &File, what: &Path, dir: &Path, lock_path: &Path) -> Result<(), StorageError> {
    // SAFETY: flock on a valid descriptor owned by `f`, which outlives the call.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(StorageError::Locked {
            dir: dir.to_path_buf(),
            lock: PathBuf::from(lock_path),
        });
    }
    Err(StorageError::io(what, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deleting_the_lock_file_does_not_release_the_lock() {
        let dir = std::env::temp_dir().join(format!("rill-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("mkdir");
        let held = lock_dir(&dir, LockFile::Create).expect("first lock");
        assert!(matches!(
            lock_dir(&dir, LockFile::Create),
            Err(StorageError::Locked { .. })
        ));
        std::fs::remove_file(dir.join(LOCK_FILE)).expect("rm LOCK");
        assert!(matches!(
            lock_dir(&dir, LockFile::Create),
            Err(StorageError::Locked { .. })
        ));
        assert!(matches!(
            lock_dir(&dir, LockFile::IfPresent),
            Err(StorageError::Locked { .. })
        ));
        drop(held);
        lock_dir(&dir, LockFile::IfPresent).expect("free after drop");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
