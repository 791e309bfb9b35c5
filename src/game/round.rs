//! One round of Blob as a compact `Copy` state machine: bidding, then tricks, then scoring.
//!
//! Search copies this state millions of times per second, so it holds only fixed arrays and
//! bitsets (160 bytes, 52 of them the cards in play order, which policy-based beliefs
//! replay). Actions share one integer range, as in BlobMaster: a bid `b` is
//! action `b` during bidding, a card is its index during play.

use super::card::{Card, CardSet, Suit, DECK_SIZE};
use rand::seq::SliceRandom;
use rand::Rng;
use std::fmt;
use thiserror::Error;

pub const MIN_PLAYERS: usize = 3;
pub const MAX_PLAYERS: usize = 8;
/// Highest bid the action space can express (and the encoder's 10 + 13 score scale).
pub const MAX_BID: u8 = 13;
/// Trump of round `r` is `TRUMP_ROTATION[r % 5]`; `None` is a no-trump round.
pub const TRUMP_ROTATION: [Option<Suit>; 5] = [
    Some(Suit::Spades),
    Some(Suit::Hearts),
    Some(Suit::Clubs),
    Some(Suit::Diamonds),
    None,
];

/// A player's seat, 0..players.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Seat(pub u8);

impl Seat {
    pub fn index(self) -> usize {
        self.0 as usize
    }

    /// The next seat clockwise at a table of `players`.
    pub fn next(self, players: u8) -> Seat {
        Seat((self.0 + 1) % players)
    }
}

impl fmt::Display for Seat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seat {}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    Bidding,
    Playing,
    /// Every card has been played; scores are final.
    Scoring,
}

/// Table settings of one round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RoundConfig {
    pub players: u8,
    pub cards: u8,
    pub dealer: Seat,
    pub trump: Option<Suit>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("{0} players: Blob is played by 3 to 8")]
    Players(u8),
    #[error("{cards} cards for {players} players: need 1..=13 cards and cards × players ≤ 52")]
    Cards { players: u8, cards: u8 },
    #[error("dealer {0} is not at the table")]
    Dealer(Seat),
    #[error("hands do not form a valid deal: {0}")]
    Deal(String),
    #[error("action {action} is not legal for {seat} in phase {phase:?}")]
    Illegal {
        action: u8,
        seat: Seat,
        phase: Phase,
    },
}

impl RoundConfig {
    pub fn validate(&self) -> Result<(), RuleError> {
        let p = usize::from(self.players);
        if !(MIN_PLAYERS..=MAX_PLAYERS).contains(&p) {
            return Err(RuleError::Players(self.players));
        }
        if self.cards == 0 || self.cards > MAX_BID || p * usize::from(self.cards) > DECK_SIZE {
            return Err(RuleError::Cards {
                players: self.players,
                cards: self.cards,
            });
        }
        if self.dealer.0 >= self.players {
            return Err(RuleError::Dealer(self.dealer));
        }
        Ok(())
    }

    /// Largest hand for `players`: `min(13, 52 / players)`.
    pub fn max_cards(players: u8) -> u8 {
        (DECK_SIZE as u8 / players.max(1)).min(MAX_BID)
    }
}

const NO_BID: u8 = u8::MAX;

// The size claimed in the module doc (and tree.rs's).
const _: () = assert!(std::mem::size_of::<Round>() == 160);

/// The full state of one round. Hidden information (other seats' hands) is included: callers
/// that must not see it (belief sampling, encoding) take only what they are allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Round {
    config: RoundConfig,
    phase: Phase,
    to_act: Seat,
    hands: [CardSet; MAX_PLAYERS],
    /// Every card played this round, current trick included.
    played: CardSet,
    bids: [u8; MAX_PLAYERS],
    tricks_won: [u8; MAX_PLAYERS],
    /// Every card played this round in play order; `plays_len` are valid, the last
    /// `trick_len` of them the current trick.
    plays: [Card; DECK_SIZE],
    plays_len: u8,
    trick_len: u8,
    leader: Seat,
    completed_tricks: u8,
    /// Bit `s` of `voids[seat]`: the seat failed to follow suit `s`, so holds none of it.
    voids: [u8; MAX_PLAYERS],
}

impl Round {
    /// Starts a round from known hands (one per seat, `config.cards` each, no card twice).
    pub fn new(config: RoundConfig, hands: &[CardSet]) -> Result<Round, RuleError> {
        config.validate()?;
        if hands.len() != usize::from(config.players) {
            return Err(RuleError::Deal(format!(
                "{} hands for {} players",
                hands.len(),
                config.players
            )));
        }
        let mut seen = CardSet::EMPTY;
        for (seat, h) in hands.iter().enumerate() {
            if h.len() != u32::from(config.cards) {
                return Err(RuleError::Deal(format!(
                    "seat {seat} holds {} cards, not {}",
                    h.len(),
                    config.cards
                )));
            }
            if h.0 & !CardSet::DECK.0 != 0 || h.0 & seen.0 != 0 {
                return Err(RuleError::Deal(format!(
                    "seat {seat}'s hand repeats a card or is off the deck"
                )));
            }
            seen = seen.union(*h);
        }
        let mut all = [CardSet::EMPTY; MAX_PLAYERS];
        all[..hands.len()].copy_from_slice(hands);
        let first = config.dealer.next(config.players);
        Ok(Round {
            config,
            phase: Phase::Bidding,
            to_act: first,
            hands: all,
            played: CardSet::EMPTY,
            bids: [NO_BID; MAX_PLAYERS],
            tricks_won: [0; MAX_PLAYERS],
            plays: [Card::default(); DECK_SIZE],
            plays_len: 0,
            trick_len: 0,
            leader: first,
            completed_tricks: 0,
            voids: [0; MAX_PLAYERS],
        })
    }

    /// Shuffles a full deck and deals `config.cards` to each seat, one at a time from seat 0
    /// (as BlobMaster deals). Undealt cards stay hidden for the whole round.
    pub fn deal<R: Rng + ?Sized>(config: RoundConfig, rng: &mut R) -> Result<Round, RuleError> {
        config.validate()?;
        let mut deck: Vec<u8> = (0..DECK_SIZE as u8).collect();
        deck.shuffle(rng);
        let p = usize::from(config.players);
        let mut hands = vec![CardSet::EMPTY; p];
        for (i, &c) in deck[..p * usize::from(config.cards)].iter().enumerate() {
            hands[i % p].insert(Card::from_index(c).expect("deck holds card indices"));
        }
        Round::new(config, &hands)
    }

    /// Deals `cards` cards to each of `players` seats with a random dealer and trump, drawn
    /// from `rng` in that order before the cards: how self-play, the arena and the search
    /// benchmark deal, so that one seed means the same rounds in each.
    pub fn deal_random<R: Rng + ?Sized>(
        players: u8,
        cards: u8,
        rng: &mut R,
    ) -> Result<Round, RuleError> {
        let config = RoundConfig {
            players,
            cards,
            // `max(1)`: no players is refused by `deal`, not by an empty range here.
            dealer: Seat(rng.random_range(0..players.max(1))),
            trump: TRUMP_ROTATION[rng.random_range(0..TRUMP_ROTATION.len())],
        };
        Round::deal(config, rng)
    }

    pub fn config(&self) -> RoundConfig {
        self.config
    }
    pub fn players(&self) -> u8 {
        self.config.players
    }
    pub fn cards_dealt(&self) -> u8 {
        self.config.cards
    }
    pub fn dealer(&self) -> Seat {
        self.config.dealer
    }
    pub fn trump(&self) -> Option<Suit> {
        self.config.trump
    }
    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn is_over(&self) -> bool {
        self.phase == Phase::Scoring
    }
    /// The seat to act (meaningless once the round is over).
    pub fn to_act(&self) -> Seat {
        self.to_act
    }
    pub fn hand(&self, seat: Seat) -> CardSet {
        self.hands[seat.index()]
    }
    pub fn played(&self) -> CardSet {
        self.played
    }
    pub fn bid(&self, seat: Seat) -> Option<u8> {
        let b = self.bids[seat.index()];
        (b != NO_BID).then_some(b)
    }
    pub fn tricks_won(&self, seat: Seat) -> u8 {
        self.tricks_won[seat.index()]
    }
    /// Cards of the current trick in play order (empty during bidding and between tricks).
    pub fn trick(&self) -> &[Card] {
        let end = usize::from(self.plays_len);
        &self.plays[end - usize::from(self.trick_len)..end]
    }
    /// The public history of the round so far, in order: each bid made, then each card
    /// played, with the seat that acted (seats of plays follow from the trick winners).
    pub fn history(&self) -> impl Iterator<Item = (Seat, u8)> + '_ {
        let players = self.config.players;
        let first = self.config.dealer.next(players);
        let bids = (0..players)
            .map(move |i| Seat((first.0 + i) % players))
            .map_while(|seat| self.bid(seat).map(|b| (seat, b)));
        let plays = &self.plays[..usize::from(self.plays_len)];
        let mut leader = first;
        let plays = plays.chunks(usize::from(players)).flat_map(move |trick| {
            let seats = (0..players).map(move |i| Seat((leader.0 + i) % players));
            if trick.len() == usize::from(players) {
                leader = seats
                    .clone()
                    .nth(trick_winner(trick, self.config.trump))
                    .unwrap();
            }
            seats.zip(trick.iter().map(|c| c.index()))
        });
        bids.chain(plays)
    }
    /// This round back at its deal: every hand with the cards it has played since, no bids and
    /// no plays. Replaying [`Round::history`] on it gives this round again.
    pub fn as_dealt(&self) -> Round {
        let mut hands = self.hands;
        let bids = self.seats().filter(|&s| self.bid(s).is_some()).count();
        for (seat, card) in self.history().skip(bids) {
            hands[seat.index()].insert(Card::from_index(card).expect("a play is a card"));
        }
        let players = usize::from(self.config.players);
        Round::new(self.config, &hands[..players]).expect("a round's hands and plays form its deal")
    }
    /// Leader of the current (or next) trick.
    pub fn leader(&self) -> Seat {
        self.leader
    }
    pub fn completed_tricks(&self) -> u8 {
        self.completed_tricks
    }
    /// Suits `seat` has shown to be void in by not following them (public information).
    pub fn known_voids(&self, seat: Seat) -> impl Iterator<Item = Suit> {
        let bits = self.voids[seat.index()];
        Suit::ALL
            .into_iter()
            .filter(move |s| bits >> s.index() & 1 == 1)
    }
    pub fn is_void(&self, seat: Seat, suit: Suit) -> bool {
        self.voids[seat.index()] >> suit.index() & 1 == 1
    }
    /// Seats in clockwise order, 0..players.
    pub fn seats(&self) -> impl Iterator<Item = Seat> {
        (0..self.config.players).map(Seat)
    }
    /// The seat whose card is `i`-th in the current trick.
    pub fn trick_seat(&self, i: usize) -> Seat {
        Seat(((self.leader.index() + i) % usize::from(self.config.players)) as u8)
    }

    /// Sum of the bids made so far.
    pub fn bid_total(&self) -> u32 {
        self.seats()
            .filter_map(|s| self.bid(s))
            .map(u32::from)
            .sum()
    }

    /// The bid the dealer may not make (the "hook"): cards − sum of the other bids, when that
    /// lies in 0..=cards. Only meaningful while the dealer is to bid.
    pub fn forbidden_bid(&self) -> Option<u8> {
        let others: u32 = self
            .seats()
            .filter(|&s| s != self.dealer())
            .filter_map(|s| self.bid(s))
            .map(u32::from)
            .sum();
        u32::from(self.config.cards)
            .checked_sub(others)
            .map(|f| f as u8)
    }

    /// Legal actions of the seat to act as a mask (bit `a` = action `a`); 0 once the round is over.
    pub fn legal_mask(&self) -> u64 {
        match self.phase {
            Phase::Bidding => {
                let all = (1u64 << (self.config.cards + 1)) - 1;
                match (self.to_act == self.dealer())
                    .then(|| self.forbidden_bid())
                    .flatten()
                {
                    Some(f) => all & !(1 << f),
                    None => all,
                }
            }
            Phase::Playing => {
                let hand = self.hands[self.to_act.index()];
                if self.trick_len == 0 {
                    return hand.0;
                }
                let follow = hand.of_suit(self.trick()[0].suit());
                if follow.is_empty() {
                    hand.0
                } else {
                    follow.0
                }
            }
            Phase::Scoring => 0,
        }
    }

    pub fn is_legal(&self, action: u8) -> bool {
        action < 64 && self.legal_mask() >> action & 1 == 1
    }

    /// Applies `action` after checking it is legal.
    pub fn try_apply(&mut self, action: u8) -> Result<(), RuleError> {
        if !self.is_legal(action) {
            return Err(RuleError::Illegal {
                action,
                seat: self.to_act,
                phase: self.phase,
            });
        }
        self.apply(action);
        Ok(())
    }

    /// Applies a legal action (checked in debug builds only: search's hot path).
    pub fn apply(&mut self, action: u8) {
        debug_assert!(self.is_legal(action), "illegal action {action} in {self:?}");
        let seat = self.to_act;
        let players = self.config.players;
        match self.phase {
            Phase::Bidding => {
                self.bids[seat.index()] = action;
                self.to_act = seat.next(players);
                if seat == self.dealer() {
                    self.phase = Phase::Playing;
                    self.to_act = self.leader;
                }
            }
            Phase::Playing => {
                let card = Card::from_index(action).expect("a legal play is a card");
                self.hands[seat.index()].remove(card);
                self.played.insert(card);
                if self.trick_len > 0 {
                    let led = self.trick()[0].suit();
                    if card.suit() != led {
                        self.voids[seat.index()] |= 1 << led.index();
                    }
                }
                self.plays[usize::from(self.plays_len)] = card;
                self.plays_len += 1;
                self.trick_len += 1;
                self.to_act = seat.next(players);
                if self.trick_len == players {
                    self.finish_trick();
                }
            }
            Phase::Scoring => unreachable!("apply on a finished round"),
        }
    }

    fn finish_trick(&mut self) {
        let winner = self.trick_seat(trick_winner(self.trick(), self.config.trump));
        self.tricks_won[winner.index()] += 1;
        self.completed_tricks += 1;
        self.trick_len = 0;
        self.leader = winner;
        self.to_act = winner;
        if self.completed_tricks == self.config.cards {
            self.phase = Phase::Scoring;
        }
    }

    /// Round score of `seat`: `10 + bid` on an exact bid, else 0 (only final once the round is over).
    pub fn score(&self, seat: Seat) -> u32 {
        match self.bid(seat) {
            Some(b) if b == self.tricks_won(seat) => 10 + u32::from(b),
            _ => 0,
        }
    }

    /// Value target of `seat` on the network's scale: `2·score/23 − 1`.
    pub fn value_target(&self, seat: Seat) -> f32 {
        (2.0 * f64::from(self.score(seat)) / 23.0 - 1.0) as f32
    }

    /// Cards not visible to `seat`: neither in its hand nor played (other hands plus the undealt).
    pub fn unseen_by(&self, seat: Seat) -> CardSet {
        CardSet::DECK.minus(self.hand(seat)).minus(self.played)
    }

    /// The same round with other hands replaced (a determinized world). The caller keeps
    /// every public fact: hand sizes and played cards are checked in debug builds.
    pub fn with_hands(&self, hands: &[CardSet]) -> Round {
        let mut r = *self;
        for (seat, &h) in hands.iter().enumerate() {
            debug_assert_eq!(h.len(), self.hands[seat].len());
            debug_assert!(h.0 & self.played.0 == 0);
            r.hands[seat] = h;
        }
        r
    }
}

/// Index, within `trick`, of the winning card: the highest trump if any was played, else the
/// highest card of the led suit.
pub fn trick_winner(trick: &[Card], trump: Option<Suit>) -> usize {
    let led = trick[0].suit();
    let key = |c: Card| -> u8 {
        if Some(c.suit()) == trump {
            32 + c.rank()
        } else if c.suit() == led {
            16 + c.rank()
        } else {
            0
        }
    };
    let mut best = 0;
    for (i, &c) in trick.iter().enumerate().skip(1) {
        if key(c) > key(trick[best]) {
            best = i;
        }
    }
    best
}
