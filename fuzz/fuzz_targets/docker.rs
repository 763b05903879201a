//! The docker json-file decoder (with framing) on arbitrary bytes in arbitrary chunks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringtail::fuzzing::records(ringtail::cut::decode::Format::Docker, false, data);
});
