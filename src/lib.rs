//! `engine`: Blob (Oh Hell) rules, BlobMaster's state encoder, BlobNet inference and self-play.
//!
//! Modules in dependency order: [`game`] → [`encode`] → [`net`] → [`ring`] → [`search`] →
//! the jobs ([`selfplay`], [`analyze`], [`arena`], [`bench`]); [`device`] opens a backend from a
//! user's choice and [`settings`] holds the search settings a user sets. ARCHITECTURE.md
//! describes the data path (search → ring → backend → ring → search) and the slot protocol.

pub mod analyze;
pub mod arena;
pub mod bench;
pub mod device;
pub mod encode;
pub mod error_text;
pub mod fsio;
pub mod game;
pub mod net;
pub mod ring;
pub mod safetensors;
pub mod search;
pub mod selfplay;
pub mod serve;
pub mod settings;
pub mod telemetry;
pub mod utc;
pub mod vectors;
pub mod verify;
