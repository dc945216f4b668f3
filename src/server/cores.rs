//! Thread-per-core execution: one single-threaded runtime per core, each serving the
//! connections handed to it at accept, round-robin, for their whole life (no work
//! stealing, so a connection's wake-ups stay on its thread).
//!
//! Selected with `RILL_RUNTIME=percore` (measurement of issue #10's execution models;
//! see `bench/results/2026-12-07-execution-models.md`). The default is tokio's
//! multi-thread runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::runtime::Handle;

static CORES: OnceLock<Vec<Handle>> = OnceLock::new();
static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Whether the environment asks for one runtime per core.
pub fn wanted() -> bool {
    std::env::var("RILL_RUNTIME").is_ok_and(|v| v == "percore")
}

/// Starts `extra` more single-threaded runtimes on threads of their own; the caller's
/// runtime is the first core. Call once, from within the first core's runtime.
pub fn start(extra: usize) -> std::io::Result<()> {
    let mut handles = vec![Handle::current()];
    for i in 0..extra {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        handles.push(rt.handle().clone());
        std::thread::Builder::new()
            .name(format!("rill-core-{}", i + 1))
            .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    }
    let _ = CORES.set(handles);
    Ok(())
}

/// The runtime the next accepted connection goes to, when running one per core.
pub fn next() -> Option<&'static Handle> {
    let cores = CORES.get()?;
    Some(&cores[NEXT.fetch_add(1, Ordering::Relaxed) % cores.len()])
}
