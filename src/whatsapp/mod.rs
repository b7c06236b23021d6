//! Meta's WhatsApp Cloud API wire format, and nothing else.
//!
//! [`signature`] checks that a webhook POST really comes from Meta;
//! [`payload`] turns an authentic body into domain values (messages,
//! statuses, and the reasons for anything it could not read). Both are pure
//! functions: no database, no HTTP, so they are tested on their own with
//! recorded Meta-shaped fixtures under `tests/fixtures/whatsapp/`.

pub mod payload;
pub mod signature;
