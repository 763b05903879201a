//! Line formats: turning framed lines into entries (message, stream, time).
//!
//! - `raw`: the line is the message.
//! - `cri` ([`cri`]): `<RFC3339 time> <stdout|stderr> <P|F> <message>`; `P` partials are joined
//!   with the following lines of the same stream up to the final `F`.
//! - `docker` ([`docker`]): json-file `{"log":…,"stream":…,"time":…}`; the runtime's 16 KiB
//!   splits (a `log` without a final `\n`) are joined.
//!
//! Joins are per stream — stdout and stderr of one container never merge — and bounded by
//! `max_line_bytes`: a joined message that would grow past it is cut and flagged `truncated`.
//! A line that does not parse is passed on as it is with an `error`, and counted; nothing is
//! dropped.

pub mod cri;
pub mod docker;

use crate::config::Format;
use crate::framing::Line;

/// Which output stream of a container an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    /// Standard output.
    Stdout = 0,
    /// Standard error.
    Stderr = 1,
    /// Not known (raw files, malformed lines).
    Unknown = 2,
}

impl Stream {
    /// Number of streams; per-stream state is an array of this size.
    pub const COUNT: usize = 3;

    /// The name used in records, when known.
    pub fn name(self) -> Option<&'static str> {
        match self {
            Stream::Stdout => Some("stdout"),
            Stream::Stderr => Some("stderr"),
            Stream::Unknown => None,
        }
    }

    /// Index into per-stream arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    fn parse(name: &[u8]) -> Option<Self> {
        match name {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// One decoded entry, borrowing from a framed line or a join buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// File offset of the first byte of the entry's first line.
    pub offset: u64,
    /// The message.
    pub message: &'a [u8],
    /// The stream, when the format has one.
    pub stream: Stream,
    /// The time as written in the file (RFC 3339), empty when the format has none.
    pub time: &'a [u8],
    /// The message was cut to a size limit.
    pub truncated: bool,
    /// Why the line did not parse in its format; the message is then the whole line.
    pub error: Option<&'static str>,
}

impl<'a> Entry<'a> {
    /// An entry for a raw line.
    pub fn raw(line: Line<'a>) -> Self {
        Self {
            offset: line.offset,
            message: line.bytes,
            stream: Stream::Unknown,
            time: &[],
            truncated: line.truncated,
            error: None,
        }
    }

    fn malformed(line: Line<'a>, error: &'static str) -> Self {
        Self {
            error: Some(error),
            ..Self::raw(line)
        }
    }
}

/// Counters of a decoder, added to by each call; the caller publishes and resets them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeStats {
    /// Lines that did not parse.
    pub malformed: u64,
    /// Joined messages cut at `max_line_bytes`.
    pub truncated: u64,
    /// Bytes dropped from joined messages that were cut.
    pub truncated_bytes: u64,
}

/// A decoder for one file: the format's parser plus its per-stream join state.
#[derive(Debug)]
pub enum Decoder {
    /// Lines are messages.
    Raw,
    /// Kubernetes CRI.
    Cri(cri::CriDecoder),
    /// Docker json-file.
    Docker(docker::DockerDecoder),
}

impl Decoder {
    /// A decoder for `format`, joining partial lines up to `max_line_bytes`.
    pub fn new(format: Format, max_line_bytes: usize) -> Self {
        match format {
            Format::Raw => Decoder::Raw,
            Format::Cri => Decoder::Cri(cri::CriDecoder::new(max_line_bytes)),
            Format::Docker => Decoder::Docker(docker::DockerDecoder::new(max_line_bytes)),
        }
    }

    /// Decodes one line; `emit` is called for the finished entry, if the line finishes one.
    pub fn push(
        &mut self,
        line: Line<'_>,
        stats: &mut DecodeStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        match self {
            Decoder::Raw => emit(Entry::raw(line)),
            Decoder::Cri(d) => d.push(line, stats, emit),
            Decoder::Docker(d) => d.push(line, stats, emit),
        }
    }

    /// The file will not grow: emits every pending partial message as it is.
    pub fn finish(&mut self, emit: &mut impl FnMut(Entry<'_>)) {
        match self {
            Decoder::Raw => {}
            Decoder::Cri(d) => d.joins.finish(emit),
            Decoder::Docker(d) => d.joins.finish(emit),
        }
    }

    /// File offset of the oldest pending partial message, if any.
    pub fn pending_start(&self) -> Option<u64> {
        match self {
            Decoder::Raw => None,
            Decoder::Cri(d) => d.joins.pending_start(),
            Decoder::Docker(d) => d.joins.pending_start(),
        }
    }
}

/// Joins partial messages, per stream, bounded by a byte limit.
#[derive(Debug)]
pub struct Joins {
    max: usize,
    streams: [Join; Stream::COUNT],
}

#[derive(Debug, Default)]
struct Join {
    active: bool,
    offset: u64,
    time: Vec<u8>,
    buf: Vec<u8>,
    truncated: bool,
}

impl Joins {
    /// Empty join state with a limit of `max` bytes per joined message.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            streams: Default::default(),
        }
    }

    /// Handles one parsed piece of a message. `partial` pieces are held; a final piece ends
    /// the message and emits it (borrowed from the line when nothing was held: no copy).
    #[allow(clippy::too_many_arguments)]
    pub fn piece(
        &mut self,
        offset: u64,
        stream: Stream,
        time: &[u8],
        message: &[u8],
        truncated: bool,
        partial: bool,
        stats: &mut DecodeStats,
        emit: &mut impl FnMut(Entry<'_>),
    ) {
        let max = self.max;
        let join = &mut self.streams[stream.index()];
        if !join.active {
            if !partial {
                emit(Entry {
                    offset,
                    message,
                    stream,
                    time,
                    truncated,
                    error: None,
                });
                return;
            }
            join.active = true;
            join.offset = offset;
            join.time.clear();
            join.time.extend_from_slice(time);
            join.buf.clear();
            join.truncated = false;
        }
        let room = max.saturating_sub(join.buf.len());
        if message.len() > room {
            if !join.truncated {
                stats.truncated += 1;
            }
            stats.truncated_bytes += (message.len() - room) as u64;
            join.buf.extend_from_slice(&message[..room]);
            join.truncated = true;
        } else {
            join.buf.extend_from_slice(message);
        }
        join.truncated |= truncated;
        if !partial {
            emit(Entry {
                offset: join.offset,
                message: &join.buf,
                stream,
                time: &join.time,
                truncated: join.truncated,
                error: None,
            });
            join.active = false;
            join.buf.clear();
            // A single huge join must not pin its memory for the life of the file.
            if join.buf.capacity() > 64 * 1024 {
                join.buf.shrink_to(64 * 1024);
            }
        }
    }

    /// Emits every pending message as it is.
    pub fn finish(&mut self, emit: &mut impl FnMut(Entry<'_>)) {
        for (i, join) in self.streams.iter_mut().enumerate() {
            if join.active {
                let stream = [Stream::Stdout, Stream::Stderr, Stream::Unknown][i];
                emit(Entry {
                    offset: join.offset,
                    message: &join.buf,
                    stream,
                    time: &join.time,
                    truncated: join.truncated,
                    error: None,
                });
                join.active = false;
                join.buf.clear();
            }
        }
    }

    /// File offset of the oldest pending message, if any.
    pub fn pending_start(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter(|j| j.active)
            .map(|j| j.offset)
            .min()
    }
}
