//! A fast HTTP receiver for the OTLP and Elasticsearch cases: it accepts every request
//! (OTLP/HTTP: an empty 200; `_bulk`: `{"errors":false}`) and checks what arrived by
//! scanning each (decompressed) body for the workload's sequence tokens — a record's message
//! appears once in an OTLP `LogRecord` body and once in a bulk document — so delivery is
//! verified at the receiver without trusting the sender's counts.
//!
//! HTTP/1.1 with keep-alive, a thread per connection, `Content-Length` bodies (what ringtail
//! sends), gzip and zstd. A real receiver does more per record (parsing, indexing); this one
//! stands in for an infinitely fast one, so the figures are the sender's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::verify::{SeqCheck, SeqReport};

/// What the receiver answers as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/HTTP (`POST /v1/logs`).
    Otlp,
    /// Elasticsearch `_bulk`.
    Bulk,
}

#[derive(Debug)]
struct Shared {
    protocol: Protocol,
    check: Mutex<Option<SeqCheck>>,
    /// Sequence tokens seen (deliveries, duplicates included).
    tokens: AtomicU64,
    /// Readiness records seen.
    ready: AtomicU64,
    /// Body bytes received (as sent, before decompression).
    bytes: AtomicU64,
    stop: AtomicBool,
}

/// A running receiver; stops accepting when dropped.
#[derive(Debug)]
pub struct Receiver {
    /// Its port on 127.0.0.1.
    pub port: u16,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Listens on a free loopback port.
    pub fn start(protocol: Protocol) -> std::io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            protocol,
            check: Mutex::new(None),
            tokens: AtomicU64::new(0),
            ready: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let accept = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("bench-receiver".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accept.stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&accept);
                    std::thread::spawn(move || {
                        let _ = serve(stream, &shared);
                    });
                }
            })?;
        Ok(Receiver { port, shared })
    }

    /// From now on, counts deliveries of a workload with these records per stream.
    pub fn expect(&self, records_per_stream: &[u64]) {
        *lock(&self.shared.check) = Some(SeqCheck::new(records_per_stream));
    }

    /// Records delivered so far (sequence tokens, plus readiness records).
    pub fn delivered(&self) -> u64 {
        self.shared.tokens.load(Ordering::Relaxed) + self.shared.ready.load(Ordering::Relaxed)
    }

    /// Body bytes received.
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }

    /// What arrived, against what [`expect`](Self::expect) was told.
    pub fn report(&self) -> Option<SeqReport> {
        lock(&self.shared.check).as_ref().map(SeqCheck::report)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One connection: requests until the peer closes it.
fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut body = Vec::new();
    let mut plain = Vec::new();
    loop {
        let mut length = 0usize;
        let mut encoding = String::new();
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("content-encoding") {
                    encoding = value.to_ascii_lowercase();
                }
            }
        }
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
        shared.bytes.fetch_add(length as u64, Ordering::Relaxed);
        let data: &[u8] = match encoding.as_str() {
            "gzip" => {
                plain.clear();
                flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain)?;
                &plain
            }
            "zstd" => {
                plain = zstd::decode_all(&body[..])?;
                &plain
            }
            _ => &body,
        };
        let ready = memchr::memmem::find_iter(data, b"ready-").count() as u64;
        shared.ready.fetch_add(ready, Ordering::Relaxed);
        let tokens = memchr::memmem::find_iter(data, b"seq=s").count() as u64;
        if let Some(check) = lock(&shared.check).as_mut() {
            check.scan(data);
        }
        shared.tokens.fetch_add(tokens, Ordering::Relaxed);
        let (content_type, answer): (&str, &[u8]) = match shared.protocol {
            Protocol::Otlp => ("application/x-protobuf", b""),
            Protocol::Bulk => (
                "application/json",
                b"{\"took\":1,\"errors\":false,\"items\":[]}",
            ),
        };
        // One write: a head and a body written apart would wait on the peer's delayed ACK.
        let mut response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        )
        .into_bytes();
        response.extend_from_slice(answer);
        writer.write_all(&response)?;
    }
}
