//! AFL++ entry point for `rill::fuzz::request_decoder` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| rill::fuzz::request_decoder(data));
}
