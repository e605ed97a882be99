//! Frames and time through the whole pipeline, on a new lab per input
//! (see `patchbay_dataplane::fuzzing` for the input's format and the checks).

#![no_main]

use libfuzzer_sys::fuzz_target;
use patchbay_dataplane::fuzzing::Lab;

fuzz_target!(|data: &[u8]| {
    Lab::new().run(data);
});
