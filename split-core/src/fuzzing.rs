//! Fuzz entry points (feature `fuzzing`): each takes raw bytes, exercises one part of
//! the core and asserts its invariants. The cargo-fuzz targets are 3-line shims into
//! these functions, and a stable test replays `fuzz/corpus/*` through them.
