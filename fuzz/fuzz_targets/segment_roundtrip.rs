#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| storage_format_fuzz::segment_roundtrip(data));
