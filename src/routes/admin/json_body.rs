//! JSON bodies of admin writes, read by hand so that every rejection is a
//! `422` naming the field at fault.

use serde_json::{Map, Value};

use crate::error::AppError;

/// The body as a JSON object; `shape` describes what is expected.
pub fn object(body: &[u8], shape: &str) -> Result<Map<String, Value>, AppError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(AppError::Unprocessable(format!(
            "body must be a JSON object {shape}, got {other}"
        ))),
        Err(e) => Err(AppError::Unprocessable(format!(
            "body must be a JSON object {shape}: {e}"
        ))),
    }
}
