//! Giving freed heap back to the system.
//!
//! Rill allocates through glibc's malloc. When a burst of objects dies together — a
//! million keys expiring, a consumer group destroyed, a huge reply sent — glibc keeps
//! the freed memory in its arenas: the resident size stays at the burst's peak even
//! with nothing left in the keyspace (measured by the load test, `bench/loadgen stress`,
//! phase `ttl`: 1 M keys with TTLs, all expired, RSS 965 MiB; after `malloc_trim(0)`
//! 193 MiB). Redis meets the same problem with jemalloc's page decay and active
//! defragmentation. Rill asks glibc, every [`INTERVAL`], how much of its heap is free;
//! when that is more than [`MIN_FREE`] and more than a quarter of what is in use, it
//! calls `malloc_trim(0)`, which returns every free page of every arena
//! (`madvise(MADV_DONTNEED)`). The call runs on a blocking thread: it walks the arenas
//! and holds each one's lock while it does, so allocations on an arena wait for at
//! most one arena's walk (milliseconds for a heap of a few GiB), never for the
//! keyspace lock.
//!
//! Why not switch the allocator (jemalloc, mimalloc): every memory figure of the
//! project (bytes per entry, per pending entry, per key, RSS ratios in `bench/run`) is
//! measured on glibc, and the per-object layouts were tuned to its size classes; a
//! trim on a threshold fixes the one behaviour that was wrong without moving them.
//!
//! A connection that has just sent a huge reply trims at once ([`release`]) rather
//! than waiting for the next check.

use std::time::Duration;

/// How often the free heap is checked.
pub const INTERVAL: Duration = Duration::from_secs(5);

/// Free heap below this is left to glibc's own trimming (the top of the main arena).
pub const MIN_FREE: usize = 64 << 20;

/// Bytes in use and bytes free inside malloc's arenas.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn heap_usage() -> (usize, usize) {
    // SAFETY: mallinfo2 takes no arguments and only reads glibc's own bookkeeping
    // under its arena locks; it is safe to call from any thread at any time.
    let mi = unsafe { libc::mallinfo2() };
    (mi.uordblks, mi.fordblks)
}

/// Returns free heap pages to the system if enough are free; the bytes that were free.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn trim_if_worth_it() -> Option<usize> {
    let (used, free) = heap_usage();
    if free < MIN_FREE || free < used / 4 {
        return None;
    }
    release();
    Some(free)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn trim_if_worth_it() -> Option<usize> {
    None
}

/// Returns every free heap page to the system now (glibc's `malloc_trim(0)`); a few
/// milliseconds for a heap of a few hundred MiB.
pub fn release() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases pages malloc holds free; no pointer handed out
    // is affected. Safe to call concurrently with other allocations.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Runs forever: the periodic check (spawned by the listener, aborted at shutdown).
pub async fn trim_loop() {
    let mut tick = tokio::time::interval(INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // The check too runs on a blocking thread: mallinfo2 walks every arena's free
        // lists under its lock, milliseconds on a large fragmented heap.
        if let Ok(Some(free)) = tokio::task::spawn_blocking(trim_if_worth_it).await {
            tracing::debug!(
                "Returned free heap to the system ({} bytes were free)",
                free
            );
        }
    }
}
