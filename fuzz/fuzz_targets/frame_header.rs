//! Any bytes as a frame header: no panic, lengths within the caps, re-encoding round trips.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mpr::fuzzing::frame_header(data);
});
