//! Leads: the row model and its storage queries ([`model`]), the engagement
//! score ([`score`]), and what admin staff do with leads ([`service`]).

pub mod model;
pub mod score;
pub mod service;

pub use model::Lead;
