//! Benchmark scenarios (in progress).
