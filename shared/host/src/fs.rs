//! Crash-safe files: written whole or not at all (temp + fsync + rename + directory fsync), and private
//! where they hold secrets.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// Writes a file readable only by its owner (mode 0600), whole or not at all.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically(path, bytes)
}

/// temp + fsync + rename + directory fsync. The temporary file is created with mode 0600 and keeps it: every
/// file the binaries write may hold a secret, and the process umask (`process::private_files`) agrees.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (mut file, tmp) = tempfile_in(dir).with_context(|| format!("create a file in {}", dir.display()))?;
    let result = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("write {}", path.display()));
    }
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("write {}", path.display()));
    }
    sync_dir(dir).ok();
    Ok(())
}

/// Creates a uniquely named file (mode 0600) in `dir`; the caller renames or removes it.
pub fn tempfile_in(dir: &Path) -> io::Result<(File, PathBuf)> {
    for _ in 0..16 {
        let path = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
        match fs::OpenOptions::new().write(true).read(true).create_new(true).mode(0o600).open(&path) {
            Ok(f) => return Ok((f, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("could not create a temporary file"))
}

/// fsync a directory so a rename in it is durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` if missing (with `levels - 1` missing parents at most expected) and fsyncs the parents that
/// gained an entry, so that a power loss cannot drop a directory whose files are already counted elsewhere.
/// `levels`: how many directories up (from `dir`'s parent) are fsynced when `dir` is created.
pub fn create_dir_durable(dir: &Path, levels: usize) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir)?;
    let mut child = dir;
    for _ in 0..levels {
        let Some(parent) = child.parent().filter(|p| !p.as_os_str().is_empty()) else { break };
        sync_dir(parent)?;
        child = parent;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_written_file_is_whole_and_private_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hub.key");
        write_private(&path, b"first").expect("write");
        write_private(&path, b"second, longer").expect("overwrite");
        assert_eq!(fs::read(&path).expect("read"), b"second, longer");
        assert_eq!(fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("list").flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("hub.key")]);
    }

    #[test]
    fn a_durable_directory_is_made_with_its_missing_parent_and_made_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let nested = dir.path().join("blobs/ab");
        create_dir_durable(&nested, 2).expect("create");
        assert!(nested.is_dir());
        create_dir_durable(&nested, 2).expect("an existing directory is fine");
        let file = dir.path().join("blobs/file");
        fs::write(&file, b"x").expect("write");
        assert!(create_dir_durable(&file.join("below"), 2).is_err(), "a file is not a directory");
    }

    #[test]
    fn a_write_into_a_missing_directory_fails_and_names_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = write_private(&dir.path().join("no/such/file"), b"x").expect_err("must fail");
        assert!(format!("{err:#}").contains("no/such"), "{err:#}");
    }
}
