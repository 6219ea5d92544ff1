//! Model artifacts on disk: a directory with `manifest.json` and the files it lists, each with
//! its SHA-256, so a corrupt, truncated or foreign artifact fails to load with a clear error
//! instead of serving nonsense.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const FORMAT: &str = "dispatch-risk-model";
/// Bumped when a reader of the previous version could not read the new files correctly.
pub const FORMAT_VERSION: u32 = 1;
pub const MANIFEST: &str = "manifest.json";

/// File names inside an artifact directory.
pub mod files {
    pub const DELAY_MODEL: &str = "delay_model.txt";
    pub const FEATURES: &str = "features.json";
    pub const BASELINE: &str = "baseline.json";
    pub const FALLBACK_RULES: &str = "fallback_rules.json";
    /// Carrier scorecards and the cost model (absent in artifacts from before carriers).
    pub const CARRIERS: &str = "carriers.json";
    /// The analyst's page: charts and tables of the run.
    pub const REPORT: &str = "report.html";
    pub const HISTORY: &str = "history.parquet";
    pub const VALID_PREDICTIONS: &str = "valid_predictions.parquet";
}

/// Checksums of the files an artifact consists of.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileList(pub BTreeMap<String, String>);

/// The self-description every artifact carries. `extra` keeps sections this crate does not
/// interpret (the training summary, later models), so they survive a load/save round trip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub format_version: u32,
    pub version: String,
    pub created_at: String,
    pub files: FileList,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes an artifact's files, then the manifest listing them (last, so that a crash midway
/// leaves no manifest and therefore no loadable half-artifact).
pub struct ArtifactWriter {
    dir: PathBuf,
    files: FileList,
}

impl ArtifactWriter {
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let manifest = dir.join(MANIFEST);
        if manifest.exists() {
            std::fs::remove_file(&manifest).map_err(|e| Error::io(&manifest, e))?;
        }
        Ok(ArtifactWriter {
            dir: dir.to_path_buf(),
            files: FileList::default(),
        })
    }

    pub fn write(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        self.files.0.insert(name.to_string(), sha256_hex(bytes));
        Ok(())
    }

    pub fn write_json<T: Serialize>(&mut self, name: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::Model(e.to_string()))?;
        self.write(name, &bytes)
    }

    pub fn finish(
        self,
        version: String,
        created_at: String,
        extra: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Manifest> {
        let manifest = Manifest {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            version,
            created_at,
            files: self.files,
            extra,
        };
        let path = self.dir.join(MANIFEST);
        let bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Model(e.to_string()))?;
        std::fs::write(&path, bytes).map_err(|e| Error::io(&path, e))?;
        Ok(manifest)
    }
}

/// An artifact opened for reading: the manifest is checked, files are verified as read.
pub struct ArtifactReader {
    dir: PathBuf,
    pub manifest: Manifest,
}

impl ArtifactReader {
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::artifact(
                dir,
                "no manifest.json: not a model directory (train one with `dispatch-risk train`)",
            ),
            _ => Error::io(&path, e),
        })?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| Error::artifact(&path, format!("unreadable manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(Error::artifact(
                &path,
                format!("format `{}` is not `{FORMAT}`", manifest.format),
            ));
        }
        if manifest.format_version != FORMAT_VERSION {
            return Err(Error::artifact(
                &path,
                format!(
                    "format version {} cannot be read by this build (reads version {FORMAT_VERSION}); retrain or use a matching release",
                    manifest.format_version
                ),
            ));
        }
        Ok(ArtifactReader {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.manifest.files.0.contains_key(name)
    }

    /// Reads a listed file and checks its checksum.
    pub fn read(&self, name: &str) -> Result<Vec<u8>> {
        let expected =
            self.manifest.files.0.get(name).ok_or_else(|| {
                Error::artifact(&self.dir, format!("the manifest lists no `{name}`"))
            })?;
        let path = self.dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| Error::artifact(&path, e.to_string()))?;
        if sha256_hex(&bytes) != *expected {
            return Err(Error::artifact(
                &path,
                "checksum mismatch: the file is corrupt or was changed after training",
            ));
        }
        Ok(bytes)
    }

    pub fn read_json<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T> {
        let bytes = self.read(name)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::artifact(self.dir.join(name), format!("unreadable: {e}")))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}
