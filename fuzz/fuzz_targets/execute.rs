#![no_main]
//! Block execution: sequential and parallel agree on fuzz-built blocks.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tos_parallel::fuzzing::check_execution(data);
});
