//! AFL++ entry point for `rill::fuzz::log_recovery` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| rill::fuzz::log_recovery(data));
}
