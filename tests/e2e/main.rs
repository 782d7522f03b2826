//! End-to-end tests: the real `datum-edge` binary through a plant's life.

mod crash;
mod diffs;
mod life;
mod review_fixes;
mod tamper;
