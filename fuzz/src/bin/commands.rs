//! AFL++ entry point for `rill::fuzz::command_execution` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| rill::fuzz::command_execution(data));
}
