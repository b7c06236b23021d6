//! Leads: the row model and its storage queries ([`model`]), and what admin
//! staff do with leads ([`service`]).

pub mod model;
pub mod service;

pub use model::Lead;
