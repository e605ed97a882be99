//! Criterion benchmarks of patchbay's per-frame stages live in `benches/`;
//! run them with `cargo bench -p patchbay-benches`.
