//! `engine serve`: play Blob against the engine in a browser. An HTTP server serves one page,
//! embedded in the binary (`page/`), and a small JSON API (routes in `http.rs`) over games held
//! in memory (`games.rs`, `game.rs`). The engine's moves and the hints are searches of an
//! in-process analysis server (`analyst.rs`), so they are `engine analyze`'s answers, and a
//! finished game downloads as analysis queries (`record.rs`) that replay through it.
//!
//! Safe by default: the server binds 127.0.0.1 unless told otherwise, reads request bodies up
//! to [`MAX_BODY_BYTES`], checks every input (an error is a JSON object naming the field), holds
//! at most [`ServeConfig::max_games`] games, drops those idle for
//! [`ServeConfig::idle_timeout`], bounds each request's search ([`MAX_SIMULATIONS`]) and serves
//! no file but its embedded ones.

mod analyst;
mod error;
mod game;
mod games;
mod http;
mod new_game;
mod record;

pub use error::{ApiError, ErrorCode};
pub use http::MAX_BODY_BYTES;
pub use new_game::{MAX_DETS, MAX_SIMS, MAX_SIMULATIONS};

use crate::analyze::{self, AnalyzeConfig};
use crate::net::Backend;
use analyst::Analyst;
use games::Games;
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// Settings of a server.
#[derive(Clone, Copy, Debug)]
pub struct ServeConfig {
    /// Address to listen on (port 0: any free port; [`Server::local_addr`] says which).
    pub addr: SocketAddr,
    /// Threads answering requests (a request for an engine move holds one for its search).
    pub http_threads: usize,
    /// The analysis server's search threads and encoder.
    pub analysis: AnalyzeConfig,
    /// Most games held at once.
    pub max_games: usize,
    /// A game not asked for this long is dropped.
    pub idle_timeout: Duration,
}

impl ServeConfig {
    /// The defaults at `addr`, with `analysis` for the searches.
    pub fn new(addr: SocketAddr, analysis: AnalyzeConfig) -> ServeConfig {
        ServeConfig {
            addr,
            http_threads: 8,
            analysis,
            max_games: 64,
            idle_timeout: Duration::from_secs(2 * 3600),
        }
    }
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("listening on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the {backend} backend takes {rows} rows per batch; the searches need {need}")]
    BatchTooSmall {
        backend: &'static str,
        rows: usize,
        need: usize,
    },
}

/// A server listening, not yet answering (see [`Server::run`]).
pub struct Server {
    http: tiny_http::Server,
    addr: SocketAddr,
    games: Games,
    analyst: Analyst,
    threads: usize,
}

impl Server {
    /// Listens on `config.addr` and starts the searches on `backend`.
    pub fn bind(config: &ServeConfig, backend: Box<dyn Backend>) -> Result<Server, ServeError> {
        let need = analyze::rows_per_batch(&config.analysis.search);
        if backend.max_batch() < need {
            return Err(ServeError::BatchTooSmall {
                backend: backend.name(),
                rows: backend.max_batch(),
                need,
            });
        }
        let http = tiny_http::Server::http(config.addr).map_err(|source| ServeError::Bind {
            addr: config.addr,
            source,
        })?;
        let addr = http
            .server_addr()
            .to_ip()
            .expect("an HTTP server on an IP address has one");
        Ok(Server {
            http,
            addr,
            games: Games::new(config.max_games, config.idle_timeout),
            analyst: Analyst::start(backend, config.analysis),
            threads: config.http_threads.max(1),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers requests, on [`ServeConfig::http_threads`] threads, for as long as the process runs.
    pub fn run(self) {
        std::thread::scope(|scope| {
            for _ in 0..self.threads {
                scope.spawn(|| loop {
                    match self.http.recv() {
                        Ok(request) => http::handle(request, &self.games, &self.analyst),
                        // A connection that failed to open: the next one may not.
                        Err(e) => eprintln!("engine serve: accepting a connection: {e}"),
                    }
                });
            }
        });
    }
}
