//! The games a server holds, by id: unguessable ids (128 bits from the operating system's
//! entropy), a cap on how many games live at once, and expiry of the games left idle.
//!
//! Each game has its own lock, held for the whole of a request on it (an engine move holds it
//! through its search), so two requests on one game run one after the other while other games
//! go on. The table's own lock is held only to look a game up.

use super::error::{ApiError, ErrorCode};
use super::game::Game;
use super::new_game::GameSettings;
use rand::rngs::OsRng;
use rand::TryRngCore;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A game and when it was last asked for.
struct Entry {
    game: Arc<Mutex<Game>>,
    last_used: Instant,
}

/// The server's games.
pub struct Games {
    games: Mutex<HashMap<String, Entry>>,
    max_games: usize,
    idle_timeout: Duration,
}

impl Games {
    pub fn new(max_games: usize, idle_timeout: Duration) -> Games {
        Games {
            games: Mutex::new(HashMap::new()),
            max_games,
            idle_timeout,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        self.games.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the games idle for the timeout or longer.
    fn expire(&self, games: &mut HashMap<String, Entry>) {
        let now = Instant::now();
        games.retain(|_, e| now.duration_since(e.last_used) < self.idle_timeout);
    }

    /// Starts a game; returns its id and the game.
    pub fn create(&self, settings: GameSettings) -> Result<(String, Arc<Mutex<Game>>), ApiError> {
        let mut games = self.lock();
        self.expire(&mut games);
        if games.len() >= self.max_games {
            return Err(ApiError::new(
                ErrorCode::TooManyGames,
                format!(
                    "this server already holds {} games (its limit); try again once one has \
                     been idle for {} s",
                    games.len(),
                    self.idle_timeout.as_secs()
                ),
            ));
        }
        let id = random_id()?;
        let seed = u64::from_le_bytes(random_bytes()?);
        let game = Arc::new(Mutex::new(Game::new(settings, seed)));
        let entry = Entry {
            game: game.clone(),
            last_used: Instant::now(),
        };
        games.insert(id.clone(), entry);
        Ok((id, game))
    }

    /// The game with this id, if it exists and has not expired (asking for it counts as use).
    pub fn get(&self, id: &str) -> Result<Arc<Mutex<Game>>, ApiError> {
        let mut games = self.lock();
        self.expire(&mut games);
        let entry = games.get_mut(id).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownGame,
                format!(
                    "no game has this id: it never existed, or it expired after {} s idle",
                    self.idle_timeout.as_secs()
                ),
            )
        })?;
        entry.last_used = Instant::now();
        Ok(entry.game.clone())
    }
}

/// Locks a game (a request that panicked while holding it leaves it as it was).
pub fn lock_game(game: &Mutex<Game>) -> MutexGuard<'_, Game> {
    game.lock().unwrap_or_else(|e| e.into_inner())
}

/// A fresh game id: 128 bits of the operating system's entropy, as 32 hex digits.
fn random_id() -> Result<String, ApiError> {
    let bytes: [u8; 16] = random_bytes()?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0; N];
    OsRng.try_fill_bytes(&mut bytes).map_err(|e| {
        ApiError::new(
            ErrorCode::Internal,
            format!("the operating system's entropy: {e}"),
        )
    })?;
    Ok(bytes)
}
