//! Any bytes as rendezvous protocol lines: no panic, no unbounded line.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mpr::fuzzing::rendezvous_line(data);
});
