//! The migrations are embedded at compile time (`embed_migrations!` in
//! `src/db/mod.rs`); without this, cargo would not notice a new or edited
//! migration and keep a binary that lacks it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
