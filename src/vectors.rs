//! Readers for recorded reference data in BlobMaster's vector format (`games.json`,
//! `net_io.json`) and the conversion of a recorded state into a [`Round`].

use crate::game::{Card, CardSet, Round, RoundConfig, Seat, Suit};
use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Deserialize)]
pub struct GamesFile {
    pub format: String,
    pub rounds: Vec<RecordedRound>,
}

#[derive(Debug, Deserialize)]
pub struct RecordedRound {
    pub round_id: u64,
    pub num_players: u8,
    pub cards_dealt: u8,
    pub dealer: u8,
    pub trump: Option<u8>,
    pub initial_hands: Vec<Vec<u8>>,
    pub decisions: Vec<Decision>,
    #[serde(rename = "final")]
    pub result: RoundResult,
}

#[derive(Debug, Deserialize)]
pub struct Decision {
    pub step: u32,
    pub player: u8,
    /// "bid" or "play".
    pub phase: String,
    pub state: RecordedState,
    pub legal_actions: Vec<u8>,
    pub mask: Vec<u8>,
    pub action: u8,
    /// Rounded to 6 decimals by the recorder.
    pub encoding: Vec<f64>,
}

#[derive(Debug, Deserialize)]
pub struct RoundResult {
    pub bids: Vec<u8>,
    pub tricks_won: Vec<u8>,
    pub scores: Vec<u32>,
}

/// A position as BlobMaster's recorder writes it (all hands visible).
#[derive(Clone, Debug, Deserialize)]
pub struct RecordedState {
    pub dealer: u8,
    pub trump: Option<u8>,
    pub cards_dealt: u8,
    pub hands: Vec<Vec<u8>>,
    pub bids: Vec<Option<u8>>,
    pub tricks_won: Vec<u8>,
    pub current_trick: RecordedTrick,
    pub previous_tricks: Vec<RecordedTrick>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RecordedTrick {
    pub leader: Option<u8>,
    /// `[seat, card]` in play order.
    pub cards: Vec<(u8, u8)>,
    #[serde(default)]
    pub winner: Option<u8>,
}

#[derive(Debug, Deserialize)]
pub struct NetIoFile {
    pub format: String,
    pub cases: Vec<NetCase>,
}

#[derive(Debug, Deserialize)]
pub struct NetCase {
    pub id: u64,
    pub source: String,
    #[serde(rename = "ref")]
    pub reference: Option<DecisionRef>,
    pub input: Vec<f32>,
    pub mask: Vec<u8>,
    pub logits: Vec<f32>,
    pub policy: Vec<f32>,
    pub value: f32,
}

#[derive(Debug, Deserialize)]
pub struct DecisionRef {
    pub round_id: u64,
    pub step: u32,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

impl GamesFile {
    pub fn load(path: &Path) -> Result<GamesFile> {
        let file: GamesFile = read_json(path)?;
        if file.format != "blobmaster-games-v1" {
            bail!(
                "{}: format {:?}, expected \"blobmaster-games-v1\"",
                path.display(),
                file.format
            );
        }
        Ok(file)
    }

    /// The position at every decision of every round, in file order: each round replayed from
    /// its deal through its recorded actions.
    pub fn positions(&self) -> Result<Vec<Round>> {
        let mut positions = Vec::new();
        for rec in &self.rounds {
            let mut round = rec.start()?;
            for d in &rec.decisions {
                positions.push(round);
                round.try_apply(d.action).with_context(|| {
                    format!(
                        "round {} step {}: action {}",
                        rec.round_id, d.step, d.action
                    )
                })?;
            }
        }
        Ok(positions)
    }
}

impl NetIoFile {
    pub fn load(path: &Path) -> Result<NetIoFile> {
        let file: NetIoFile = read_json(path)?;
        if file.format != "blobmaster-net-io-v1" {
            bail!(
                "{}: format {:?}, expected \"blobmaster-net-io-v1\"",
                path.display(),
                file.format
            );
        }
        Ok(file)
    }
}

/// Where `engine verify` looks for the vectors when not told: `$ENGINE_VECTORS`, then
/// `tests/vectors` under the working directory, then under the source tree this binary was
/// built from (so an installed binary still finds its clone's vectors). `None`: nowhere.
pub fn locate() -> Option<std::path::PathBuf> {
    let built_from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    std::env::var_os("ENGINE_VECTORS")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain([dir(), built_from])
        .find(|d| d.is_dir())
}

/// The vectors directory: `$ENGINE_VECTORS`, else `tests/vectors` (relative to the working
/// directory: the crate's root under `cargo test`).
pub fn dir() -> std::path::PathBuf {
    std::env::var_os("ENGINE_VECTORS")
        .map_or_else(|| "tests/vectors".into(), std::path::PathBuf::from)
}

/// Legal mask from a 0/1 list of 52 entries.
pub fn mask_bits(mask: &[u8]) -> u64 {
    mask.iter()
        .enumerate()
        .filter(|(_, &m)| m != 0)
        .fold(0, |acc, (i, _)| acc | 1 << i)
}

fn card(i: u8) -> Result<Card> {
    Card::from_index(i).with_context(|| format!("card index {i} is not in 0..52"))
}

fn card_set(cards: &[u8]) -> Result<CardSet> {
    let mut set = CardSet::EMPTY;
    for &c in cards {
        let c = card(c)?;
        if set.contains(c) {
            bail!("card {c} listed twice");
        }
        set.insert(c);
    }
    Ok(set)
}

impl RecordedRound {
    pub fn config(&self) -> Result<RoundConfig> {
        config(self.num_players, self.cards_dealt, self.dealer, self.trump)
    }

    pub fn start(&self) -> Result<Round> {
        let hands = self
            .initial_hands
            .iter()
            .map(|h| card_set(h))
            .collect::<Result<Vec<_>>>()?;
        Ok(Round::new(self.config()?, &hands)?)
    }
}

fn config(players: u8, cards: u8, dealer: u8, trump: Option<u8>) -> Result<RoundConfig> {
    let trump = match trump {
        None => None,
        Some(t) => Some(
            Suit::from_index(t).with_context(|| format!("trump {t} is not a suit index 0..=3"))?,
        ),
    };
    let cfg = RoundConfig {
        players,
        cards,
        dealer: Seat(dealer),
        trump,
    };
    cfg.validate()?;
    Ok(cfg)
}

impl RecordedState {
    /// Rebuilds the position by replaying its history through the rules from the deal it
    /// implies (current hands plus the cards each seat has played), so an inconsistent state
    /// (illegal bid, card played out of turn, wrong hand size) is an error.
    pub fn to_round(&self) -> Result<Round> {
        let players = self.hands.len() as u8;
        let cfg = config(players, self.cards_dealt, self.dealer, self.trump)?;
        if self.bids.len() != self.hands.len() || self.tricks_won.len() != self.hands.len() {
            bail!(
                "{} hands but {} bids and {} trick counts",
                self.hands.len(),
                self.bids.len(),
                self.tricks_won.len()
            );
        }
        let plays: Vec<(u8, u8)> = self
            .previous_tricks
            .iter()
            .chain([&self.current_trick])
            .flat_map(|t| t.cards.iter().copied())
            .collect();
        let mut hands = self
            .hands
            .iter()
            .map(|h| card_set(h))
            .collect::<Result<Vec<_>>>()?;
        for &(seat, c) in &plays {
            let hand = hands
                .get_mut(usize::from(seat))
                .with_context(|| format!("seat {seat} played but is not at the table"))?;
            hand.insert(card(c)?);
        }
        let mut round = Round::new(cfg, &hands)?;
        let mut bidder = cfg.dealer.next(players);
        for _ in 0..players {
            let Some(b) = self.bids[bidder.index()] else {
                break;
            };
            round
                .try_apply(b)
                .with_context(|| format!("bid {b} of {bidder}"))?;
            bidder = bidder.next(players);
        }
        if round.seats().filter(|&s| round.bid(s).is_none()).count()
            != self.bids.iter().filter(|b| b.is_none()).count()
        {
            bail!(
                "bids {:?} are not a prefix of the bidding order from {}",
                self.bids,
                cfg.dealer.next(players)
            );
        }
        for trick in self.previous_tricks.iter().chain([&self.current_trick]) {
            if !trick.cards.is_empty() && trick.leader != Some(round.leader().0) {
                bail!(
                    "trick led by {:?}, but {} leads by the history",
                    trick.leader,
                    round.leader()
                );
            }
            for &(seat, c) in &trick.cards {
                if round.to_act() != Seat(seat) {
                    bail!(
                        "card {} played by seat {seat} out of turn ({} to act)",
                        card(c)?,
                        round.to_act()
                    );
                }
                round.try_apply(c)?;
            }
            if let Some(w) = trick.winner {
                if round.leader() != Seat(w) || !round.trick().is_empty() {
                    bail!(
                        "trick {:?} recorded as won by seat {w}, the rules say {}",
                        trick.cards,
                        round.leader()
                    );
                }
            }
        }
        for seat in round.seats() {
            if round.tricks_won(seat) != self.tricks_won[seat.index()] {
                bail!(
                    "{seat} won {} tricks by the history, state says {}",
                    round.tricks_won(seat),
                    self.tricks_won[seat.index()]
                );
            }
        }
        Ok(round)
    }
}
