//! `engine`: Blob (Oh Hell) rules, BlobMaster's state encoder, BlobNet inference and self-play.
//!
//! Modules in dependency order: [`game`] → [`encode`] → [`net`].

pub mod encode;
pub mod game;
pub mod net;
pub mod vectors;
pub mod verify;
