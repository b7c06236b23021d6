//! `GET /api/admin/leads/export?format=csv|ndjson` with the lead list's
//! filters: every matching lead, streamed.

use actix_web::http::header::{ContentDisposition, DispositionParam, DispositionType};
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use futures_util::stream;

use super::leads::lead_filter;
use super::params::{arg, Query};
use crate::db::Database;
use crate::error::AppError;
use crate::leads::export::{self, Chunk, Format};
use crate::leads::filter::{Cursor, LeadFilter, Sort};
use crate::startup::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/leads/export", web::get().to(export));
}

fn format(raw: Option<&str>) -> Result<Format, AppError> {
    match raw.map(str::trim) {
        None | Some("csv") => Ok(Format::Csv),
        Some("ndjson") => Ok(Format::Ndjson),
        Some(other) => Err(AppError::BadRequest(format!(
            "format must be csv or ndjson, got '{other}'"
        ))),
    }
}

async fn read_chunk(
    db: &Database,
    filter: &LeadFilter,
    sort: Sort,
    cursor: Option<Cursor>,
) -> Result<Chunk, AppError> {
    let filter = filter.clone();
    db.read(move |conn| export::chunk(conn, &filter, sort, cursor).map_err(AppError::from))
        .await
}

/// Where the stream is.
enum Next {
    /// A chunk read and not yet sent.
    Send(Chunk),
    /// The next chunk starts after this lead.
    Read(Cursor),
    Done,
}

struct Export {
    db: Database,
    filter: LeadFilter,
    sort: Sort,
    format: Format,
    next: Next,
    /// The CSV header, until it is sent with the first chunk.
    preamble: Option<Vec<u8>>,
}

impl Export {
    fn send(&mut self, chunk: Chunk) -> Bytes {
        let mut out = self.preamble.take().unwrap_or_default();
        self.format.write(&mut out, &chunk);
        self.next = match chunk.next {
            Some(cursor) => Next::Read(cursor),
            None => Next::Done,
        };
        Bytes::from(out)
    }
}

async fn export(state: web::Data<AppState>, query: Query) -> Result<HttpResponse, AppError> {
    let format = format(arg(&query, "format"))?;
    let (filter, sort) = lead_filter(&query)?;
    // The first chunk is read before answering, so a database that is down
    // gets the usual 503 instead of a 200 that breaks off.
    let first = read_chunk(&state.db, &filter, sort, None).await?;
    let export = Export {
        db: state.db.clone(),
        filter,
        sort,
        format,
        next: Next::Send(first),
        preamble: Some(format.preamble()),
    };
    // The server asks for the next piece only once the previous one is
    // written to the socket, so a slow client slows the reads down instead
    // of piling chunks up in memory.
    let body = stream::unfold(export, |mut export| async move {
        let chunk = match std::mem::replace(&mut export.next, Next::Done) {
            Next::Done => return None,
            Next::Send(chunk) => chunk,
            Next::Read(cursor) => {
                match read_chunk(&export.db, &export.filter, export.sort, Some(cursor)).await {
                    Ok(chunk) => chunk,
                    Err(e) => {
                        // Ending with an error drops the connection before
                        // the final chunk, so the client sees a truncated
                        // transfer rather than a short export.
                        log::error!("lead export stopped after a failed read: {e}");
                        return Some((Err(e), export));
                    }
                }
            }
        };
        let bytes = export.send(chunk);
        Some((Ok::<_, AppError>(bytes), export))
    });
    let filename = format!(
        "leads-{}.{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        format.extension()
    );
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header(ContentDisposition {
            disposition: DispositionType::Attachment,
            parameters: vec![DispositionParam::Filename(filename)],
        })
        .streaming(body))
}
