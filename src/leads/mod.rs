//! Leads: the row model and its storage queries ([`model`]), the list
//! ([`filter`]), how `q` searches it ([`search`]), the per-value counts
//! its totals are read from ([`value_counts`]) and the per-day counts a
//! deep page starts from ([`day_counts`]), the sales pipeline
//! ([`pipeline`], [`change`], [`bulk`]), tags, notes, the activity timeline, the engagement [`score`], the admin
//! view of a lead, what admin staff do with single leads ([`service`]) and
//! the wipe ([`reset`]).

pub mod activity;
pub mod analytics;
pub mod bulk;
pub mod change;
pub mod day_counts;
pub mod export;
pub mod filter;
pub mod model;
pub mod notes;
pub mod pipeline;
pub mod reset;
pub mod score;
pub mod search;
pub mod service;
pub mod tags;
pub mod value_counts;
pub mod view;

pub use model::Lead;
