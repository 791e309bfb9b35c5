//! Determinization: deals of the hidden cards consistent with what one seat has seen.
//!
//! This module owns the only path from a real [`Round`] to the information a search may use:
//! [`PublicInfo::of`] copies the searching seat's own hand, the played cards (current trick
//! included), every seat's hand *size* and the voids revealed by failing to follow suit. It
//! never reads another seat's cards, and a world is built from that record alone, so the real
//! deal cannot leak into a search. Undealt cards (52 − players·cards) are part of the unseen
//! pool; a world puts them back in the undealt pile.
//!
//! Sampling is exactly uniform over the deals consistent with that information (the usual
//! determinization prior; it ignores what the opponents' bids and choices suggest, which
//! policy beliefs, [`super::inference`], weigh on top of these samples). Voids are
//! the only constraints and they act on whole suits, so a deal is counted by how many cards of
//! each suit each *void-constrained* seat receives: the number of deals with per-suit counts
//! `x` is `Π C(remaining, x)`, and every unconstrained seat and the undealt pile just split
//! whatever is left (a factor that does not depend on which cards remain). The sampler walks
//! the constrained seats in order, choosing each seat's per-suit counts with probability
//! proportional to the number of consistent completions (a memoised count), then picks the
//! cards of each suit uniformly, then shuffles the rest into the free seats and the pile.
//! With no voids this is one shuffle; each constrained seat costs one pass over the ways of
//! splitting its hand size among its allowed suits.
//!
//! A world that cannot be built means the public record is inconsistent, which is a bug: it
//! is an error, never a fallback to the real deal.

use crate::game::{CardSet, Round, Seat, Suit, MAX_PLAYERS};
use rand::Rng;
use std::collections::HashMap;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BeliefError {
    #[error("{seat} must hold {size} cards but only {available} unseen cards fit its voids")]
    NoConsistentDeal {
        seat: Seat,
        size: u32,
        available: u32,
    },
    #[error("hand sizes ({hands}) exceed the {unseen} unseen cards")]
    PoolTooSmall { hands: u32, unseen: u32 },
}

/// Everything one seat knows about the hidden cards of a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicInfo {
    /// The seat whose information this is.
    pub me: Seat,
    pub players: u8,
    pub my_hand: CardSet,
    /// Cards `me` has not seen: other hands plus the undealt cards.
    pub unseen: CardSet,
    /// Cards each seat holds now (public: everyone is dealt the same number and plays are seen).
    pub hand_sizes: [u8; MAX_PLAYERS],
    /// Bit `s` of `voids[seat]`: `seat` has shown it holds no card of suit `s`.
    pub voids: [u8; MAX_PLAYERS],
}

impl PublicInfo {
    /// What `me` knows in `round`: its hand, the played cards, hand sizes and revealed voids.
    pub fn of(round: &Round, me: Seat) -> PublicInfo {
        let mut hand_sizes = [0; MAX_PLAYERS];
        let mut voids = [0; MAX_PLAYERS];
        for seat in round.seats() {
            // Only the size of another seat's hand is read, never its cards.
            hand_sizes[seat.index()] = round.hand(seat).len() as u8;
            for suit in round.known_voids(seat) {
                voids[seat.index()] |= 1 << suit.index();
            }
        }
        PublicInfo {
            me,
            players: round.players(),
            my_hand: round.hand(me),
            unseen: round.unseen_by(me),
            hand_sizes,
            voids,
        }
    }

    fn opponents(&self) -> impl Iterator<Item = Seat> + '_ {
        (0..self.players)
            .map(Seat)
            .filter(move |&s| s != self.me && self.hand_sizes[s.index()] > 0)
    }
}

/// Per-suit card counts, 4 bits each (a suit has at most 13 cards).
type SuitCounts = [u8; 4];

fn counts_of(cards: CardSet) -> SuitCounts {
    Suit::ALL.map(|s| cards.of_suit(s).len() as u8)
}

fn memo_key(level: usize, counts: SuitCounts) -> u32 {
    (level as u32) << 16
        | u32::from(counts[0])
        | u32::from(counts[1]) << 4
        | u32::from(counts[2]) << 8
        | u32::from(counts[3]) << 12
}

/// Binomial coefficients up to 52 choose k, as f64 (deal counts overflow integers).
fn choose(n: u8, k: u8) -> f64 {
    if k > n {
        return 0.0;
    }
    let k = k.min(n - k);
    (0..k).fold(1.0, |acc, i| acc * f64::from(n - i) / f64::from(i + 1))
}

/// Calls `f(x)` for every split `x` of `size` cards over the suits not in `void_bits`, with
/// `x[s] <= available[s]`.
fn for_each_split(size: u8, void_bits: u8, available: SuitCounts, mut f: impl FnMut(SuitCounts)) {
    let cap = |s: usize| {
        if void_bits >> s & 1 == 1 {
            0
        } else {
            available[s]
        }
    };
    for x0 in 0..=cap(0).min(size) {
        for x1 in 0..=cap(1).min(size - x0) {
            for x2 in 0..=cap(2).min(size - x0 - x1) {
                let x3 = size - x0 - x1 - x2;
                if x3 <= cap(3) {
                    f([x0, x1, x2, x3]);
                }
            }
        }
    }
}

/// A constrained seat to deal to: who, how many cards, which suits it lacks.
#[derive(Clone, Copy, Debug)]
struct Constrained {
    seat: Seat,
    size: u8,
    voids: u8,
}

/// Samples determinized worlds. Keeps its scratch space between calls, so sampling allocates
/// nothing after the first few worlds.
#[derive(Debug, Default)]
pub struct WorldSampler {
    constrained: Vec<Constrained>,
    /// Number of consistent completions (up to a constant factor) from constrained seat
    /// `level` on with `counts` cards per suit left, keyed by [`memo_key`].
    completions: HashMap<u32, f64>,
}

impl WorldSampler {
    pub fn new() -> WorldSampler {
        WorldSampler::default()
    }

    /// Deals the unseen cards of `info` uniformly among the deals consistent with it. The
    /// result holds every seat's hand (`me`'s own unchanged); seats past `players` are empty.
    pub fn sample_hands<R: Rng + ?Sized>(
        &mut self,
        info: &PublicInfo,
        rng: &mut R,
    ) -> Result<[CardSet; MAX_PLAYERS], BeliefError> {
        let mut hands = [CardSet::EMPTY; MAX_PLAYERS];
        hands[info.me.index()] = info.my_hand;
        let hidden: u32 = info
            .opponents()
            .map(|s| u32::from(info.hand_sizes[s.index()]))
            .sum();
        if hidden > info.unseen.len() {
            return Err(BeliefError::PoolTooSmall {
                hands: hidden,
                unseen: info.unseen.len(),
            });
        }

        self.constrained.clear();
        self.constrained
            .extend(
                info.opponents()
                    .filter(|s| info.voids[s.index()] != 0)
                    .map(|seat| Constrained {
                        seat,
                        size: info.hand_sizes[seat.index()],
                        voids: info.voids[seat.index()],
                    }),
            );
        self.completions.clear();

        let mut pool = info.unseen;
        for level in 0..self.constrained.len() {
            let seat = self.constrained[level];
            let available = counts_of(pool);
            let total =
                count_completions(&self.constrained, &mut self.completions, level, available);
            if total <= 0.0 {
                let fits = Suit::ALL
                    .iter()
                    .filter(|s| seat.voids >> s.index() & 1 == 0)
                    .map(|&s| pool.of_suit(s).len())
                    .sum();
                return Err(BeliefError::NoConsistentDeal {
                    seat: seat.seat,
                    size: u32::from(seat.size),
                    available: fits,
                });
            }
            // Choose this seat's per-suit counts in proportion to the completions they allow.
            let mut target = rng.random::<f64>() * total;
            let mut chosen = None;
            let mut last_valid = None;
            for_each_split(seat.size, seat.voids, available, |x| {
                if chosen.is_some() {
                    return;
                }
                let rest = std::array::from_fn(|s| available[s] - x[s]);
                let ways = ways_to_take(available, x)
                    * count_completions(&self.constrained, &mut self.completions, level + 1, rest);
                if ways > 0.0 {
                    last_valid = Some(x);
                    target -= ways;
                    if target < 0.0 {
                        chosen = Some(x);
                    }
                }
            });
            // Rounding can leave `target` a hair above zero after the last split.
            let split = chosen
                .or(last_valid)
                .expect("a positive total has a valid split");
            for suit in Suit::ALL {
                let picked = pick_uniform(pool.of_suit(suit), split[suit.index()], rng);
                hands[seat.seat.index()] = hands[seat.seat.index()].union(picked);
                pool = pool.minus(picked);
            }
        }

        // The free seats and the undealt pile split the rest: one shuffle of what remains.
        let mut rest = [0u8; 52];
        let mut len = 0;
        for card in pool.iter() {
            rest[len] = card.index();
            len += 1;
        }
        let mut next = 0;
        for seat in info.opponents().filter(|s| info.voids[s.index()] == 0) {
            for _ in 0..info.hand_sizes[seat.index()] {
                // Partial Fisher–Yates: draw the next card uniformly from those not yet dealt.
                let j = rng.random_range(next..len);
                rest.swap(next, j);
                hands[seat.index()].0 |= 1 << rest[next];
                next += 1;
            }
        }
        Ok(hands)
    }
}

/// Consistent completions (up to a constant factor) for constrained seats `level..` given
/// `counts` cards per suit left, memoised in `memo`.
fn count_completions(
    seats: &[Constrained],
    memo: &mut HashMap<u32, f64>,
    level: usize,
    counts: SuitCounts,
) -> f64 {
    let Some(&seat) = seats.get(level) else {
        return 1.0;
    };
    if level + 1 == seats.len() {
        // Last constrained seat: Vandermonde, C(cards of its allowed suits, size).
        let allowed: u8 = (0..4)
            .filter(|s| seat.voids >> s & 1 == 0)
            .map(|s| counts[s])
            .sum();
        return choose(allowed, seat.size);
    }
    let key = memo_key(level, counts);
    if let Some(&n) = memo.get(&key) {
        return n;
    }
    let mut total = 0.0;
    for_each_split(seat.size, seat.voids, counts, |x| {
        let rest = std::array::from_fn(|s| counts[s] - x[s]);
        total += ways_to_take(counts, x) * count_completions(seats, memo, level + 1, rest);
    });
    memo.insert(key, total);
    total
}

/// Ways to take `x[s]` of the `available[s]` cards of each suit.
fn ways_to_take(available: SuitCounts, x: SuitCounts) -> f64 {
    (0..4).map(|s| choose(available[s], x[s])).product()
}

/// A uniformly random `k`-subset of `cards` (selection sampling, one pass).
fn pick_uniform<R: Rng + ?Sized>(cards: CardSet, k: u8, rng: &mut R) -> CardSet {
    let mut left = cards.len();
    let mut need = u32::from(k);
    let mut picked = CardSet::EMPTY;
    for card in cards.iter() {
        if need == 0 {
            break;
        }
        if rng.random_range(0..left) < need {
            picked.insert(card);
            need -= 1;
        }
        left -= 1;
    }
    picked
}

/// One determinized world: `round` with every hidden hand replaced by a consistent sample.
pub fn sample_world<R: Rng + ?Sized>(
    round: &Round,
    me: Seat,
    sampler: &mut WorldSampler,
    rng: &mut R,
) -> Result<Round, BeliefError> {
    let info = PublicInfo::of(round, me);
    let hands = sampler.sample_hands(&info, rng)?;
    // Every seat's hand is overwritten, so nothing of the real deal survives in the world.
    Ok(round.with_hands(&hands[..usize::from(info.players)]))
}
