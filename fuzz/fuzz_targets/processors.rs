//! Each processor (picked by the first byte) on an arbitrary message.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ringtail::fuzzing::processors(data);
});
