//! An arena side: how the seats it holds choose their moves.
//!
//! Two sides may share a net and differ in their search settings, in the kind of player, or
//! both: the arena compares settings, beliefs, the oracle and random play as it compares nets.

use crate::search::SearchConfig;
use rand::Rng;

/// What the seats of one side play.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    /// Determinized search over worlds sampled from what the seat to act knows
    /// ([`crate::search::Search::new`]): hidden hands are never read.
    Search(Searching),
    /// Search of the true deal, its one world (`worlds` does not apply): perfect information,
    /// the upper bound of what any belief over the hidden hands can reach. It reads the other
    /// seats' hands on purpose.
    Oracle(Searching),
    /// A uniformly random legal action, drawn from the deal's random stream; no net.
    Random,
}

/// A searching side's settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Searching {
    pub config: SearchConfig,
    /// Entries of each worker's evaluation cache for this side.
    pub cache_entries: usize,
}

impl Side {
    /// The kind's name, as the command line and the JSON result spell it.
    pub fn name(&self) -> &'static str {
        match self {
            Side::Search(_) => "search",
            Side::Oracle(_) => "oracle",
            Side::Random => "random",
        }
    }

    /// The search this side runs (the oracle's over one world), `None` for a random side: a
    /// side needs a net exactly when it searches.
    pub fn search_config(&self) -> Option<SearchConfig> {
        match self {
            Side::Search(s) => Some(s.config),
            Side::Oracle(s) => Some(SearchConfig {
                worlds: 1,
                ..s.config
            }),
            Side::Random => None,
        }
    }

    /// Entries of each worker's evaluation cache for this side (none for a random side).
    pub fn cache_entries(&self) -> usize {
        match self {
            Side::Search(s) | Side::Oracle(s) => s.cache_entries,
            Side::Random => 0,
        }
    }

    /// Most rows one of its searches gathers at once at a table of `players` (0: it sends
    /// none).
    pub fn max_rows_per_gather(&self, players: u8) -> usize {
        self.search_config()
            .map_or(0, |c| c.max_rows_per_gather(players))
    }
}

/// A uniformly random action of the legal mask `legal` (at least one bit set).
pub(crate) fn random_action(legal: u64, rng: &mut impl Rng) -> u8 {
    let nth = rng.random_range(0..legal.count_ones());
    let mut rest = legal;
    for _ in 0..nth {
        rest &= rest - 1;
    }
    rest.trailing_zeros() as u8
}
