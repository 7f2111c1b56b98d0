//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`), replayed over
//! their committed corpus by an ordinary test so that stable CI runs them too.
//!
//! Offline: fuzzed input must not resolve hostnames or open the files it names.

use std::path::Path;

use crate::parse;
use crate::validate::Io;
use crate::walk::MAX_SOURCE_BYTES;

/// `weir check`'s path on arbitrary bytes: never panics, and what it says holds up.
pub fn fuzz_parse(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("fuzz.yaml");
    let result = parse::parse(source, file, Io::Offline);
    // Deterministic: the same text gets the same verdict.
    assert_eq!(result, parse::parse(source, file, Io::Offline));
    match result {
        Ok(config) => {
            assert!(source.len() <= MAX_SOURCE_BYTES);
            assert_eq!(config.source, file);
        }
        Err(errors) => {
            assert!(!errors.errors().is_empty());
            // Positions point into the file (yaml-rust2 breaks lines at `\r` too, and
            // may place an error just past the last one, at the end of the stream).
            let lines = source.bytes().filter(|&b| b == b'\n' || b == b'\r').count() + 2;
            for e in errors.errors() {
                assert!(e.line <= lines, "{e} beyond line {lines}");
                assert!(e.line > 0 || e.column == 0, "{e}");
                assert!(!e.message.is_empty());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every file of `fuzz/corpus/config`, through the fuzz target's body.
    #[test]
    fn fuzz_corpus_replays() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus/config");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("the corpus directory") {
            let path = entry.expect("a corpus entry").path();
            super::fuzz_parse(&std::fs::read(&path).expect("a corpus file"));
            n += 1;
        }
        assert!(n >= 10, "only {n} corpus files in {dir}");
    }
}
