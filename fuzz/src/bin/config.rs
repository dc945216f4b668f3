//! AFL++ entry point for `rill::fuzz::config_parser` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| rill::fuzz::config_parser(data));
}
