//! Checkpoints: where reading resumes after a restart, stored under `data_dir`.
//!
//! A checkpoint says, per file *identity* — device, inode and a [`Fingerprint`] of the file's
//! first bytes, never the path — the offset up to which every record has been acknowledged by
//! the sinks. A record that was pending at that offset (an unfinished line, a multi-line record
//! still open) starts at or after it, so it is read again whole: the resume rule needs no
//! partial state. The fingerprint tells a recycled inode from the same file: a checkpoint
//! matches a file only when the file's first `len` bytes hash to the stored value.
//!
//! The file (`checkpoints.json`) is a header line — format version, length and CRC-32 of the
//! body — then a JSON body. It is written atomically: a temp file in the same directory,
//! `fsync`, `rename`, `fsync` of the directory. A file that fails any check (unknown version,
//! wrong length or checksum, unparsable body) is never trusted and never silently discarded:
//! it is renamed to `checkpoints.json.corrupt-<unix time>`, the error names both paths, and
//! ringtail starts as if it had no checkpoints.
//!
//! Owns the file format and the store; it may not decide what to save (the tracker's snapshot)
//! or when (the checkpointer).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::file::Fingerprint;

/// Checkpoint interval: at most a second of acknowledged records is re-read after a crash.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// A checkpoint whose file is not seen for a day is dropped: long enough for a node that was
/// down overnight, short enough that the file stays small.
pub const DEFAULT_CHECKPOINT_FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// How acknowledged offsets are saved (`checkpoints`).
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// How often the checkpoint file is written.
    pub interval: Duration,
    /// Checkpoints of files unseen for this long are dropped.
    pub forget_after: Duration,
}

/// File name of the checkpoints under `data_dir`.
pub const FILE_NAME: &str = "checkpoints.json";
/// The format version this build writes. It reads it and the versions before it (1: paths
/// as UTF-8 only).
pub const VERSION: u32 = 2;

const MAGIC: &str = "ringtail-checkpoints";

/// What went wrong with the checkpoint file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Reading, writing or renaming failed.
    #[error("cannot {action} checkpoint file {path}: {source}")]
    Io {
        /// What was attempted.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// The file is damaged or from an unknown version; it was renamed to `set_aside`.
    #[error(
        "checkpoint file {path} is unusable ({reason}); it was moved to {set_aside} and reading starts without checkpoints"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// Where it is now.
        set_aside: PathBuf,
    },
    /// The file is damaged and could not even be moved out of the way.
    #[error("checkpoint file {path} is unusable ({reason}) and cannot be moved aside: {source}")]
    SetAside {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What the OS said about the rename.
        #[source]
        source: io::Error,
    },
    /// The entries could not be serialized (not expected to happen).
    #[error("cannot serialize checkpoints: {source}")]
    Serialize {
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
}

/// The checkpoint of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "Stored", try_from = "Stored")]
pub struct Entry {
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub ino: u64,
    /// When the file was created (ns since the epoch), where the file system keeps birth
    /// times: an inode recycled for a new file has another.
    pub born: Option<u64>,
    /// Fingerprint of its first bytes.
    pub fingerprint: Fingerprint,
    /// Every record starting before this offset was acknowledged.
    pub offset: u64,
    /// The path it was last seen at (for logs, and to find it after a rotation while ringtail
    /// was down).
    pub path: PathBuf,
    /// The source it was read for.
    pub source: String,
    /// Unix time since which the file has not been seen; `None` while it is being read.
    pub gone_since: Option<u64>,
}

/// An [`Entry`] as the file holds it. Linux names are bytes: `path` is the name as text for
/// people to read (invalid UTF-8 replaced), and a name that is not UTF-8 is also kept exactly
/// in `path_base64` (format version 2; version 1 could not hold such a name at all, and a
/// single one failed every checkpoint write). `born` (version 2) is absent where the file
/// system keeps no birth time.
#[derive(Serialize, Deserialize)]
struct Stored {
    dev: u64,
    ino: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    born: Option<u64>,
    fingerprint: Fingerprint,
    offset: u64,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_base64: Option<String>,
    source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gone_since: Option<u64>,
}

impl From<Entry> for Stored {
    fn from(entry: Entry) -> Self {
        let bytes = entry.path.as_os_str().as_encoded_bytes();
        let (path, path_base64) = match std::str::from_utf8(bytes) {
            Ok(text) => (text.to_string(), None),
            Err(_) => (
                String::from_utf8_lossy(bytes).into_owned(),
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        Stored {
            dev: entry.dev,
            ino: entry.ino,
            born: entry.born,
            fingerprint: entry.fingerprint,
            offset: entry.offset,
            path,
            path_base64,
            source: entry.source,
            gone_since: entry.gone_since,
        }
    }
}

impl TryFrom<Stored> for Entry {
    type Error = String;

    fn try_from(stored: Stored) -> Result<Self, Self::Error> {
        let path = match stored.path_base64 {
            Some(encoded) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|e| format!("path_base64 of {}: {e}", stored.path))?;
                PathBuf::from(std::ffi::OsString::from_vec(bytes))
            }
            None => PathBuf::from(stored.path),
        };
        Ok(Entry {
            dev: stored.dev,
            ino: stored.ino,
            born: stored.born,
            fingerprint: stored.fingerprint,
            offset: stored.offset,
            path,
            source: stored.source,
            gone_since: stored.gone_since,
        })
    }
}

/// What a checkpoint file holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Saved {
    /// Per file: where reading resumes.
    pub entries: Vec<Entry>,
    /// Discovery's watermark (ns since the epoch): every file created before it had been
    /// found — opened and in `entries`, or read to its end and acknowledged already. A file
    /// without a checkpoint created after it may not have been read at all.
    pub discovered_until: Option<u64>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    written_at: u64,
    entries: Vec<Entry>,
    /// Added in format version 2 without a new version: older builds ignore it.
    #[serde(default)]
    discovered_until: Option<u64>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The checkpoint file of one `data_dir`.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
    temp: PathBuf,
    dir: PathBuf,
}

impl Store {
    /// The store in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(FILE_NAME),
            temp: data_dir.join(format!("{FILE_NAME}.tmp")),
            dir: data_dir.to_path_buf(),
        }
    }

    /// Where the checkpoints live.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Loads the checkpoints. No file: no entries. A damaged file is moved aside and reported
    /// as [`CheckpointError::Corrupt`]; the caller logs it and starts without checkpoints.
    pub fn load(&self) -> Result<Saved, CheckpointError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Saved::default()),
            Err(source) => {
                return Err(CheckpointError::Io {
                    action: "read",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        match parse(&bytes) {
            Ok(saved) => Ok(saved),
            Err(reason) => Err(self.set_aside(reason)),
        }
    }

    fn set_aside(&self, reason: String) -> CheckpointError {
        let set_aside = self.dir.join(format!("{FILE_NAME}.corrupt-{}", unix_now()));
        match std::fs::rename(&self.path, &set_aside) {
            Ok(()) => CheckpointError::Corrupt {
                path: self.path.clone(),
                reason,
                set_aside,
            },
            Err(source) => CheckpointError::SetAside {
                path: self.path.clone(),
                reason,
                source,
            },
        }
    }

    /// Replaces the checkpoints with `saved`, atomically and durably.
    pub fn save(&self, saved: &Saved) -> Result<(), CheckpointError> {
        let body = serde_json::to_vec(&BodyRef {
            written_at: unix_now(),
            entries: &saved.entries,
            discovered_until: saved.discovered_until,
        })
        .map_err(|source| CheckpointError::Serialize { source })?;
        let header = format!(
            "{MAGIC} v{VERSION} len={} crc32={:08x}\n",
            body.len(),
            crc32fast::hash(&body)
        );
        let io_err = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| CheckpointError::Io {
                action,
                path,
                source,
            }
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&self.temp)
            .map_err(io_err("create", &self.temp))?;
        file.write_all(header.as_bytes())
            .and_then(|()| file.write_all(&body))
            .map_err(io_err("write", &self.temp))?;
        file.sync_all().map_err(io_err("fsync", &self.temp))?;
        drop(file);
        std::fs::rename(&self.temp, &self.path).map_err(io_err("rename into place", &self.path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("fsync the directory of", &self.path))
    }
}

#[derive(Serialize)]
struct BodyRef<'a> {
    written_at: u64,
    entries: &'a [Entry],
    #[serde(skip_serializing_if = "Option::is_none")]
    discovered_until: Option<u64>,
}

/// Checks the header and the body; the error says what is wrong.
fn parse(bytes: &[u8]) -> Result<Saved, String> {
    let Some(newline) = memchr::memchr(b'\n', bytes) else {
        return Err(format!("no header line in {} bytes", bytes.len()));
    };
    let header =
        std::str::from_utf8(&bytes[..newline]).map_err(|_| "the header is not text".to_string())?;
    let body = &bytes[newline + 1..];
    let mut words = header.split(' ');
    if words.next() != Some(MAGIC) {
        return Err("not a ringtail checkpoint file".to_string());
    }
    let version = words
        .next()
        .and_then(|v| v.strip_prefix('v'))
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| "no format version in the header".to_string())?;
    if !(1..=VERSION).contains(&version) {
        return Err(format!(
            "format version {version}; this ringtail reads versions 1 to {VERSION}"
        ));
    }
    let len = words
        .next()
        .and_then(|w| w.strip_prefix("len="))
        .and_then(|v| v.parse::<usize>().ok())
        .ok_or_else(|| "no body length in the header".to_string())?;
    let crc = words
        .next()
        .and_then(|w| w.strip_prefix("crc32="))
        .and_then(|v| u32::from_str_radix(v, 16).ok())
        .ok_or_else(|| "no checksum in the header".to_string())?;
    if body.len() != len {
        return Err(format!(
            "the body has {} bytes, the header says {len} (truncated?)",
            body.len()
        ));
    }
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".to_string());
    }
    let body: Body =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid: {e}"))?;
    Ok(Saved {
        entries: body.entries,
        discovered_until: body.discovered_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, offset: u64) -> Entry {
        Entry {
            dev: 2049,
            ino,
            born: Some(1_700_000_000_000_000_000 + ino),
            fingerprint: Fingerprint::of(b"2024-01-01T00:00:00Z stdout F hello\n"),
            offset,
            path: PathBuf::from(format!("/var/log/pods/a/{ino}.log")),
            source: "pods".to_string(),
            gone_since: ino.is_multiple_of(2).then_some(1_700_000_000),
        }
    }

    fn saved(entries: &[Entry]) -> Saved {
        Saved {
            entries: entries.to_vec(),
            discovered_until: None,
        }
    }

    #[test]
    fn names_that_are_not_utf8_are_kept_exactly_and_version_1_is_read() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let mut odd = entry(7, 70);
        odd.path = PathBuf::from(std::ffi::OsStr::from_bytes(b"/var/log/app-\xff\xfe.log"));
        let entries = vec![entry(1, 10), odd];
        store.save(&saved(&entries)).unwrap();
        assert_eq!(store.load().unwrap().entries, entries);
        let text = String::from_utf8_lossy(&std::fs::read(store.path()).unwrap()).into_owned();
        assert!(text.starts_with("ringtail-checkpoints v2 "), "{text}");
        assert!(text.contains("\"path_base64\":"), "{text}");
        // What version 1 wrote (paths as text only) is read as it was.
        let body = br#"{"written_at":1,"entries":[{"dev":1,"ino":2,"fingerprint":{"len":0,"crc":0},"offset":3,"path":"/var/log/a.log","source":"s"}]}"#;
        let mut v1 = format!(
            "{MAGIC} v1 len={} crc32={:08x}\n",
            body.len(),
            crc32fast::hash(body)
        )
        .into_bytes();
        v1.extend_from_slice(body);
        std::fs::write(store.path(), v1).unwrap();
        let loaded = store.load().unwrap().entries;
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].path, PathBuf::from("/var/log/a.log"));
        assert_eq!(loaded[0].offset, 3);
    }

    #[test]
    fn saved_entries_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert_eq!(
            store.load().unwrap(),
            Saved::default(),
            "no file: no entries"
        );
        let entries = vec![entry(1, 100), entry(2, 0), entry(3, u64::MAX)];
        let mut all = saved(&entries);
        all.discovered_until = Some(1_700_000_000_123_456_789);
        store.save(&all).unwrap();
        assert_eq!(store.load().unwrap(), all);
        store.save(&saved(&entries[..1])).unwrap();
        assert_eq!(store.load().unwrap(), saved(&entries[..1]));
        assert!(!dir.path().join(format!("{FILE_NAME}.tmp")).exists());
    }

    fn assert_set_aside(damage: impl Fn(&mut Vec<u8>), why: &str) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        store.save(&saved(&[entry(1, 100), entry(2, 200)])).unwrap();
        let mut bytes = std::fs::read(store.path()).unwrap();
        damage(&mut bytes);
        std::fs::write(store.path(), &bytes).unwrap();
        let error = store.load().unwrap_err();
        let message = error.to_string();
        assert!(message.contains(why), "{why}: {message}");
        let CheckpointError::Corrupt { set_aside, .. } = error else {
            panic!("{why}: expected Corrupt, got {message}");
        };
        assert!(!store.path().exists(), "{why}: the damaged file is moved");
        assert_eq!(
            std::fs::read(&set_aside).unwrap(),
            bytes,
            "{why}: kept as it was"
        );
        assert!(message.contains(&set_aside.display().to_string()));
        assert_eq!(
            store.load().unwrap(),
            Saved::default(),
            "{why}: then starts empty"
        );
    }

    #[test]
    fn a_damaged_file_is_set_aside_never_trusted() {
        assert_set_aside(|b| b.truncate(b.len() - 10), "truncated");
        assert_set_aside(
            |b| {
                let last = b.len() - 3;
                b[last] ^= 0x01;
            },
            "checksum mismatch",
        );
        assert_set_aside(|b| b.clear(), "no header line");
        assert_set_aside(
            |b| {
                let text = String::from_utf8(b.clone()).unwrap().replacen(
                    &format!(" v{VERSION} "),
                    " v9 ",
                    1,
                );
                *b = text.into_bytes();
            },
            "format version 9",
        );
        assert_set_aside(
            |b| *b = b"{\"entries\": []}\n".to_vec(),
            "not a ringtail checkpoint file",
        );
    }
}
