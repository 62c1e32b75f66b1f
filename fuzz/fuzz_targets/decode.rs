#![no_main]
//! Transaction decoding: no panic, canonical re-encoding, stateless checks total.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tos_parallel_tools::fuzzing::check_decode(data);
});
