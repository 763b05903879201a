//! The line framer with Java multiline joining on arbitrary bytes in arbitrary chunks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringtail::fuzzing::records(ringtail::cut::decode::Format::Raw, true, data);
});
