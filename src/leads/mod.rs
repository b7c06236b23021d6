//! Leads: the row model and its storage queries ([`model`]), and what admin
//! staff do with leads ([`service`]).

pub mod analytics;
pub mod export;
pub mod model;
pub mod service;
pub mod tags;

pub use model::Lead;
