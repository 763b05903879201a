//! The fuzz targets' invariants ([`ringtail::fuzzing`]) on their seed corpora
//! (`fuzz/corpus/<target>/`), on every input a fuzz run ever found failing
//! (`fuzz/regressions/<target>/`, kept as regression tests), and on a few thousand seeded
//! random inputs, so the invariants are exercised by every test run even without cargo-fuzz.
#![allow(clippy::unwrap_used, reason = "tests fail loudly on broken invariants")]

use std::path::Path;

use bench::workload::Rng;
use ringtail::cut::decode::Format;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("cri", |d| ringtail::fuzzing::records(Format::Cri, false, d)),
    ("docker", |d| {
        ringtail::fuzzing::records(Format::Docker, false, d)
    }),
    ("framer_multiline", |d| {
        ringtail::fuzzing::records(Format::Raw, true, d)
    }),
    ("processors", ringtail::fuzzing::processors),
];

fn saved_inputs(kind: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            (
                e.path().display().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn seed_corpora_and_saved_failures_hold_the_invariants() {
    let mut seeds = 0;
    for (name, target) in TARGETS {
        for kind in ["corpus", "regressions"] {
            for (path, input) in saved_inputs(kind, name) {
                if std::panic::catch_unwind(|| target(&input)).is_err() {
                    panic!("{name}: {path} breaks an invariant");
                }
                seeds += usize::from(kind == "corpus");
            }
        }
    }
    assert!(seeds >= 8, "the seed corpora are missing ({seeds} inputs)");
}

/// Random inputs made of the pieces these formats are made of, so that most of them get
/// past the first byte of parsing.
#[test]
fn seeded_random_inputs_hold_the_invariants() {
    const PIECES: [&[u8]; 24] = [
        b"2026-11-22T10:00:00.123Z ",
        b"stdout ",
        b"stderr ",
        b"F ",
        b"P ",
        b"\n",
        b"\r\n",
        b"{\"log\":\"",
        b"\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T10:00:00Z\"}",
        b"\\u00e9\\\"",
        b"\tat a.b.C(C.java:1)",
        b"Caused by: x.Y: z",
        b"java.lang.Error: e",
        b"\"",
        b",",
        b"[10/Oct/2000:13:55:36 -0700] ",
        b"\"GET / HTTP/1.1\" 200 12 ",
        b"- ",
        b"{\"a\":{\"b\":[1,",
        b"}}",
        b"\xff\xfe",
        b"\0",
        b"x",
        b"                                  ",
    ];
    let mut rng = Rng::new(0x5eed);
    for (name, target) in TARGETS {
        for i in 0..400 {
            let mut input = vec![rng.below(256) as u8, rng.below(256) as u8];
            for _ in 0..rng.below(40) {
                let piece = PIECES[rng.below(PIECES.len() as u64) as usize];
                input.extend_from_slice(piece);
            }
            if std::panic::catch_unwind(|| target(&input)).is_err() {
                panic!(
                    "{name}: random input {i} breaks an invariant: {:?}",
                    String::from_utf8_lossy(&input)
                );
            }
        }
    }
}
