//! AFL++ entry point for `rill::fuzz::raft_frame_decoder` (see fuzz/README.md).
fn main() {
    afl::fuzz!(|data: &[u8]| rill::fuzz::raft_frame_decoder(data));
}
