//! Who is making an admin change: the optional `X-Actor` header, recorded on
//! the lead's timeline. The admin token is shared, so this is a label staff
//! tools send, not an identity leadhook verifies.

use actix_web::HttpRequest;

use crate::error::AppError;

pub const HEADER: &str = "X-Actor";
const MAX_CHARS: usize = 100;

/// The trimmed `X-Actor` value; `None` when absent or blank.
pub fn from_request(req: &HttpRequest) -> Result<Option<String>, AppError> {
    let Some(raw) = req.headers().get(HEADER) else {
        return Ok(None);
    };
    let text = raw
        .to_str()
        .map_err(|_| AppError::BadRequest(format!("{HEADER} must be visible ASCII text")))?
        .trim();
    if text.chars().count() > MAX_CHARS {
        return Err(AppError::BadRequest(format!(
            "{HEADER} must be at most {MAX_CHARS} characters"
        )));
    }
    Ok(Some(text.to_string()).filter(|t| !t.is_empty()))
}
