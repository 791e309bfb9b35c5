//! `engine`: Blob (Oh Hell) rules, BlobMaster's state encoder, BlobNet inference and self-play.
//!
//! Modules in dependency order: [`game`] → [`encode`] → [`net`].

pub mod analyze;
pub mod arena;
pub mod encode;
pub mod fsio;
pub mod game;
pub mod net;
pub mod ring;
pub mod safetensors;
pub mod search;
pub mod selfplay;
pub mod telemetry;
pub mod vectors;
pub mod verify;
