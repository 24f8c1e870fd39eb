//! The bounded, order-keeping pipeline: one reader thread walks the log in
//! order (the chain is sequential), workers check envelopes on every core,
//! and the caller's thread takes results back in log order.
//!
//! ```text
//! reader ──chunks──▶ work (bounded) ──▶ worker × N ──▶ done (bounded) ──▶ reorder ──▶ sink
//! ```
//!
//! Everything in flight is bounded by the two channels' capacities plus one
//! chunk per worker, so the reorder buffer is too. The sink sees results in
//! log order and may stop the run; then every thread winds down (the reader
//! sees the stop flag or a closed channel, workers a closed channel).
//!
//! Consumed chunks go back to the worker that decoded them to be freed
//! there: a decoded batch is hundreds of small allocations, and freeing them
//! on another thread contends for the allocator's arena locks.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use vouch_delegation::authority::AuthorityView;

use crate::store::Position;

use super::ReplayError;
use super::verify::{Checker, EnvelopeJob};
use crate::validate::rules::{Checked, Rules};

/// Records per chunk handed to a worker: large enough that channel traffic
/// is noise, small enough that all cores stay busy on short logs.
const CHUNK_RECORDS: usize = 64;

/// Chunks queued per worker on each channel.
const CHUNKS_PER_WORKER: usize = 2;

/// A record the reader produced, in log order.
#[derive(Debug)]
pub(crate) enum Item {
    /// An envelope for the workers to check.
    Envelope(Box<EnvelopeJob>),
    /// A record the reader already handled.
    Other(Position, Other),
    /// The reader stopped here.
    Fail(ReplayError),
}

/// A non-envelope record.
#[derive(Debug, Clone)]
pub(crate) enum Other {
    /// An authority view and its hash.
    View(Arc<AuthorityView>, [u8; 32]),
    /// A revocation, applied from here on.
    Revocation,
    /// A score record (nothing to check beyond the chain), its payload.
    Scores(Vec<u8>),
    /// A checkpoint that verified, and whether it is the log's own.
    Checkpoint(Box<vouch_delegation::SignedCheckpoint>, bool),
}

/// A result, in log order.
#[derive(Debug)]
pub(crate) enum Done {
    /// An envelope that passed every check.
    Envelope(Position, Box<Checked>),
    /// A non-envelope record.
    Other(Position, Other),
    /// The first failure; nothing after it is produced.
    Fail(ReplayError),
}

/// Runs `source` through `workers` checker threads, handing results to
/// `sink` in source order until the source ends, a failure comes through,
/// or the sink breaks.
pub(crate) fn run(
    source: impl Iterator<Item = Item> + Send,
    workers: usize,
    rules: Arc<Rules>,
    mut sink: impl FnMut(&Done) -> ControlFlow<()>,
) -> Result<(), ReplayError> {
    let workers = workers.max(1);
    let capacity = workers * CHUNKS_PER_WORKER;
    let (work_tx, work_rx) = sync_channel::<(u64, Vec<Item>)>(capacity);
    let (done_tx, done_rx) = sync_channel::<(u64, usize, Vec<Done>)>(capacity);
    let mut recycle = Vec::with_capacity(workers);
    let work_rx = Arc::new(Mutex::new(work_rx));
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let stop = &stop;
        std::thread::Builder::new()
            .name("replay-reader".into())
            .spawn_scoped(scope, move || {
                let mut seq = 0u64;
                let mut chunk = Vec::with_capacity(CHUNK_RECORDS);
                for item in source {
                    let last = matches!(item, Item::Fail(_));
                    chunk.push(item);
                    if chunk.len() == CHUNK_RECORDS || last {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
                        if stop.load(Ordering::Relaxed) || work_tx.send((seq, full)).is_err() {
                            return;
                        }
                        seq += 1;
                    }
                    if last {
                        return;
                    }
                }
                if !chunk.is_empty() {
                    let _ = work_tx.send((seq, chunk));
                }
            })
            .map_err(ReplayError::Threads)?;
        for n in 0..workers {
            let work_rx = Arc::clone(&work_rx);
            let done_tx = done_tx.clone();
            let mut checker = Checker::new(Arc::clone(&rules));
            let (free_tx, free_rx) = sync_channel::<Vec<Done>>(CHUNKS_PER_WORKER * 2);
            recycle.push(free_tx);
            std::thread::Builder::new()
                .name(format!("replay-check-{n}"))
                .spawn_scoped(scope, move || {
                    while let Some((seq, items)) = next_chunk(&work_rx) {
                        while let Ok(consumed) = free_rx.try_recv() {
                            drop(consumed);
                        }
                        let done =
                            items.into_iter().map(|item| check(&mut checker, item)).collect();
                        if done_tx.send((seq, n, done)).is_err() {
                            return;
                        }
                    }
                })
                .map_err(ReplayError::Threads)?;
        }
        drop(done_tx);
        drop(work_rx);
        let result = reorder(&done_rx, &recycle, &mut sink);
        // Wind down: the reader sees the flag, workers the closed channel.
        stop.store(true, Ordering::Relaxed);
        drop(done_rx);
        result
    })
}

fn next_chunk(rx: &Mutex<Receiver<(u64, Vec<Item>)>>) -> Option<(u64, Vec<Item>)> {
    rx.lock().unwrap_or_else(|p| p.into_inner()).recv().ok()
}

fn check(checker: &mut Checker, item: Item) -> Done {
    match item {
        Item::Envelope(job) => match checker.check(&job) {
            Ok(checked) => Done::Envelope(job.position, Box::new(checked)),
            Err(problem) => Done::Fail(ReplayError::at(&job.position, problem)),
        },
        Item::Other(position, other) => Done::Other(position, other),
        Item::Fail(e) => Done::Fail(e),
    }
}

/// Hands results to `sink` in chunk order; returns the first failure.
/// Consumed chunks go back to the worker that made them (never blocking:
/// when its queue is full the chunk is freed here).
fn reorder(
    done_rx: &Receiver<(u64, usize, Vec<Done>)>,
    recycle: &[SyncSender<Vec<Done>>],
    sink: &mut impl FnMut(&Done) -> ControlFlow<()>,
) -> Result<(), ReplayError> {
    let mut pending: BTreeMap<u64, (usize, Vec<Done>)> = BTreeMap::new();
    let mut next = 0u64;
    while let Ok((seq, worker, done)) = done_rx.recv() {
        pending.insert(seq, (worker, done));
        while let Some((worker, mut chunk)) = pending.remove(&next) {
            next += 1;
            let fail = chunk.iter().position(|d| matches!(d, Done::Fail(_)));
            for done in &chunk[..fail.unwrap_or(chunk.len())] {
                if sink(done).is_break() {
                    return Ok(());
                }
            }
            if let Some(at) = fail
                && let Done::Fail(e) = chunk.swap_remove(at)
            {
                return Err(e);
            }
            if let Some(tx) = recycle.get(worker) {
                let _ = tx.try_send(chunk);
            }
        }
    }
    Ok(())
}
