//! A temporary directory for the files a test writes: configs, tokens, certificates.

use std::path::PathBuf;

use tempfile::TempDir;

/// The directory, removed when dropped.
pub struct TempFiles {
    dir: TempDir,
}

impl TempFiles {
    pub fn new() -> TempFiles {
        TempFiles {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The path of `name` in the directory (written or not).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `contents` to `name`; its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("the test file is written");
        path
    }
}
