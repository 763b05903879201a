//! The dead-letter file of a sink: records its destination refused for good (a Kafka broker's
//! "message too large", an Elasticsearch mapping error, an HTTP 400), one JSON line each with
//! the sink, where it was going, the reason and the record, fsynced before the record counts
//! as delivered.
//!
//! ```json
//! {"sink":"kafka","topic":"logs","error":"Broker: Message size too large","record":{…}}
//! ```
//! A JSON record is kept as an object; any other encoding as a string (`record_base64` as
//! well when it is not valid UTF-8).
//!
//! Owns the file and its line format; it may not decide what is refused (each sink does).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::encode::Encoding;
use crate::escape::{base64_extend, write_escaped};
use crate::file::{FileIdentity, OwnFiles};
use crate::sink::driver::SinkError;

/// An open dead-letter file.
#[derive(Debug)]
pub struct DeadLetter {
    sink: String,
    path: PathBuf,
    file: File,
}

impl DeadLetter {
    /// Opens (creating directories and the file) `path` for appending, for `sink`; the file
    /// is announced in `own` so that no source reads it.
    pub fn open(sink: &str, path: &Path, own: &OwnFiles) -> Result<Self, SinkError> {
        let error = |source| SinkError::Io {
            sink: sink.to_string(),
            action: "open dead-letter file",
            target: path.display().to_string(),
            fatal: true,
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(error)?;
        if let Ok(meta) = file.metadata() {
            own.add(FileIdentity::of(&meta));
        }
        Ok(Self {
            sink: sink.to_string(),
            path: path.to_path_buf(),
            file,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one refused record — `(where_key, where_value)` says where it was going
    /// (`("topic", "logs")`, `("index", "logs-2026.12.06")`) — and fsyncs. `record` is in
    /// `encoding`; `None` when the destination did not say which records it refused (an OTLP
    /// partial success), then `count` says how many.
    pub fn write(
        &mut self,
        destination: (&str, &str),
        reason: &str,
        record: Option<(&[u8], Encoding)>,
        count: u64,
    ) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(record.map_or(0, |(r, _)| r.len()) + 128);
        line.extend_from_slice(b"{\"sink\":");
        json_string(&mut line, &self.sink);
        line.push(b',');
        json_string(&mut line, destination.0);
        line.push(b':');
        json_string(&mut line, destination.1);
        line.extend_from_slice(b",\"error\":");
        json_string(&mut line, reason);
        match record {
            Some((record, Encoding::Json | Encoding::OtlpJson)) => {
                line.extend_from_slice(b",\"record\":");
                line.extend_from_slice(record);
            }
            Some((record, _)) => {
                line.extend_from_slice(b",\"record\":\"");
                if !write_escaped(&mut line, record) {
                    line.extend_from_slice(b"\",\"record_base64\":\"");
                    base64_extend(record, &mut line);
                }
                line.push(b'"');
            }
            None => {
                line.extend_from_slice(b",\"records\":");
                line.extend_from_slice(itoa::Buffer::new().format(count).as_bytes());
            }
        }
        line.extend_from_slice(b"}\n");
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    write_escaped(out, s.as_bytes());
    out.push(b'"');
}
