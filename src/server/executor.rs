//! A single executor thread for the keyspace, with socket I/O on the runtime's threads.
//!
//! Selected with `RILL_RUNTIME=executor`, for measurement (issue #10 names this model
//! beside the multi-thread runtime and thread-per-core; the comparison is in
//! `bench/results/2026-12-07-execution-models.md`). A connection task reads and frames
//! requests as usual, then hands the whole batch — its session, the requests, its reply
//! buffer — to one dedicated thread, which executes and encodes them in order and hands
//! the batch back. The keyspace is thus only ever touched by that thread (and by the
//! committer, timers and expiry, as in the default model), so its lock is uncontended,
//! at the price of two thread crossings per batch.
//!
//! The executor stops a batch early at a request that blocks (the connection waits for
//! it, then sends the rest), at one that closes the connection, and when the replies
//! pass the flush threshold (the connection writes them first, so a long pipeline does
//! not hold all its replies).

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use crate::commands::{self, Exec, Session};
use crate::core::Shared;

/// Whether the environment asks for the single-executor model.
pub fn wanted() -> bool {
    std::env::var("RILL_RUNTIME").is_ok_and(|v| v == "executor")
}

/// A connection's batch on its way to the executor and back.
pub struct Batch {
    pub session: Session,
    /// Requests not executed yet (all of them on the way there).
    pub requests: VecDeque<Vec<Bytes>>,
    /// The connection's reply buffer; the executor appends the encoded replies.
    pub wbuf: BytesMut,
    /// Byte ranges in `wbuf` of replies that acknowledge logged writes.
    pub acks: Vec<(usize, usize)>,
    /// Why the executor stopped before the end of `requests`, if it did.
    pub stop: Option<Stop>,
    /// A reply larger than the huge-reply mark was encoded.
    pub huge: bool,
}

/// Why a batch came back before its last request.
pub enum Stop {
    /// The request blocked; its reply is the connection's to wait for and encode.
    Blocked(Exec),
    /// The request's reply is the connection's last.
    Close,
    /// The replies passed the flush threshold: write them, then send the rest.
    Flush,
}

type Job = (Arc<Shared>, Batch, oneshot::Sender<Batch>);

static EXECUTOR: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// Starts the executor thread. Call once, before connections are served.
pub fn start() -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("rill-executor".into())
        .spawn(move || {
            while let Ok((shared, mut batch, back)) = rx.recv() {
                run(&shared, &mut batch);
                // A connection that went away meanwhile drops its receiver: nothing to do.
                let _ = back.send(batch);
            }
        })?;
    let _ = EXECUTOR.set(tx);
    Ok(())
}

/// Whether the executor thread is running (the connection then sends it its batches).
pub fn running() -> bool {
    EXECUTOR.get().is_some()
}

/// Executes `batch` on the executor thread and returns it with the replies appended.
/// `None` if the executor is gone (it never stops while the process runs).
pub async fn execute(shared: &Arc<Shared>, batch: Batch) -> Option<Batch> {
    let (tx, rx) = oneshot::channel();
    EXECUTOR.get()?.send((shared.clone(), batch, tx)).ok()?;
    rx.await.ok()
}

/// The executor's side: executes and encodes requests in order until one stops the batch.
fn run(shared: &Shared, batch: &mut Batch) {
    batch.stop = None;
    while let Some(argv) = batch.requests.pop_front() {
        let start = batch.wbuf.len();
        match commands::execute(&mut batch.session, shared, argv) {
            Exec::Reply(r) => {
                if !batch.session.suppress_reply {
                    r.encode(batch.session.proto, &mut batch.wbuf);
                }
            }
            blocked @ Exec::Blocked { .. } => {
                batch.stop = Some(Stop::Blocked(blocked));
                return;
            }
        }
        if std::mem::take(&mut batch.session.logged) {
            batch.acks.push((start, batch.wbuf.len()));
        }
        if batch.wbuf.len() - start > super::connection::HUGE_REPLY {
            batch.huge = true;
        }
        if batch.session.close_after_reply {
            batch.stop = Some(Stop::Close);
            return;
        }
        if batch.wbuf.len() >= super::connection::FLUSH_THRESHOLD {
            batch.stop = Some(Stop::Flush);
            return;
        }
    }
}
