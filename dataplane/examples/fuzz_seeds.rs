//! Writes the fuzzer's seed corpus (real frames and short conversations,
//! see `patchbay_dataplane::fuzzing::seed_corpus`) into a directory:
//!
//!     cargo run -p patchbay-dataplane --example fuzz_seeds -- fuzz/corpus/pipeline

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus/pipeline".into()),
    );
    std::fs::create_dir_all(&dir)?;
    let corpus = patchbay_dataplane::fuzzing::seed_corpus();
    for (name, input) in &corpus {
        std::fs::write(dir.join(name), input)?;
    }
    println!("{} seeds written to {}", corpus.len(), dir.display());
    Ok(())
}
