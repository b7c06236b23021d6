//! Collects webhook bodies that arrive together into one write.
//!
//! Handlers hand their parsed body to the [`Ingestor`] and wait. One task
//! takes every body waiting (up to a limit), has the writer apply them as a
//! single job — set-based when it can, see [`super::apply_all`] — and answers
//! each handler once that job is committed. While writes are in flight the
//! next bodies queue up, so the batch grows with the load by itself.
//!
//! Two writes may be in flight: while the writer applies one batch, the
//! answers of the previous one go out and their senders' next requests come
//! in, instead of the writer waiting for that round trip. The writer still
//! applies and commits them in order.

use std::sync::Arc;

use actix_web::web::Bytes;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::{apply_all, Body, IngestReport};
use crate::db::Database;
use crate::error::AppError;
use crate::whatsapp::payload::ParsedBody;

struct Submission {
    parsed: ParsedBody,
    raw: Bytes,
    reply: oneshot::Sender<Result<IngestReport, AppError>>,
}

/// Handle for submitting bodies. Cheap to clone.
#[derive(Clone)]
pub struct Ingestor {
    queue: mpsc::Sender<Submission>,
}

impl Ingestor {
    /// Starts the collecting task on the current Tokio runtime. It ends once
    /// every `Ingestor` clone is dropped and the queue is drained.
    pub fn start(db: Database, max_batch: usize) -> Ingestor {
        let max_batch = max_batch.max(1);
        let (queue, receiver) = mpsc::channel(max_batch * 4);
        tokio::spawn(run(db, receiver, max_batch));
        Ingestor { queue }
    }

    /// Applies a body; `Ok` only once it is committed.
    pub async fn submit(&self, parsed: ParsedBody, raw: Bytes) -> Result<IngestReport, AppError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || AppError::Unavailable("the write path has stopped".into());
        self.queue
            .send(Submission { parsed, raw, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Writes in flight at once; see the module documentation.
const WRITES_IN_FLIGHT: usize = 2;

async fn run(db: Database, mut receiver: mpsc::Receiver<Submission>, max_batch: usize) {
    let in_flight = Arc::new(Semaphore::new(WRITES_IN_FLIGHT));
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(max_batch);
        if receiver.recv_many(&mut batch, max_batch).await == 0 {
            return;
        }
        let db = db.clone();
        tokio::spawn(async move {
            write_batch(&db, batch).await;
            drop(permit);
        });
    }
}

async fn write_batch(db: &Database, batch: Vec<Submission>) {
    let (work, replies): (Vec<_>, Vec<_>) = batch
        .into_iter()
        .map(|s| ((s.parsed, s.raw), s.reply))
        .unzip();
    let outcome = db
        .write_optimistic(move |conn, attempt| {
            let bodies: Vec<Body<'_>> = work
                .iter()
                .map(|(parsed, raw)| Body { parsed, raw })
                .collect();
            apply_all(conn, &bodies, attempt).map_err(AppError::from)
        })
        .await;
    match outcome {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                // The handler may have gone away (client disconnected).
                let _ = reply.send(result.map_err(store_failed));
            }
        }
        Err(e) => {
            let reason = e.to_string();
            for reply in replies {
                let _ = reply.send(Err(AppError::Unavailable(reason.clone())));
            }
        }
    }
}

/// Any failure to store a webhook is a `503`: WhatsApp then retries, and the
/// retry is harmless because storing is idempotent.
pub fn store_failed(e: diesel::result::Error) -> AppError {
    log::error!("could not store webhook: {e}");
    AppError::Unavailable("could not store the webhook; it will be accepted on retry".into())
}
