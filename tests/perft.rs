//! "Perft" for Blob: the number of complete action sequences (bids, then plays) from small
//! deals, and the sum of final scores over them, counted through `Round` and through an
//! independent brute force written from the rules (spec §1) on plain vectors. A rule bug in
//! either (hook, follow suit, trick winner, leader, scoring) changes the counts.

use engine::game::{Card, CardSet, Round, RoundConfig, Seat, Suit};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Sequences and summed scores of every seat, via the engine.
fn perft_engine(round: &Round) -> (u64, u64) {
    if round.is_over() {
        return (1, round.seats().map(|s| u64::from(round.score(s))).sum());
    }
    let mask = round.legal_mask();
    (0..52u8)
        .filter(|&a| mask >> a & 1 == 1)
        .fold((0, 0), |(n, total), a| {
            let mut next = *round;
            next.apply(a);
            let (m, t) = perft_engine(&next);
            (n + m, total + t)
        })
}

/// The rules again, on vectors, straight from the spec.
#[derive(Clone)]
struct Plain {
    players: usize,
    cards: usize,
    dealer: usize,
    trump: Option<u8>,
    hands: Vec<Vec<u8>>,
    bids: Vec<Option<usize>>,
    tricks: Vec<usize>,
    trick: Vec<(usize, u8)>,
    leader: usize,
    played_tricks: usize,
}

impl Plain {
    fn actions(&self) -> (usize, Vec<u8>) {
        let bid_order: Vec<usize> = (1..=self.players)
            .map(|i| (self.dealer + i) % self.players)
            .collect();
        if let Some(&seat) = bid_order.iter().find(|&&s| self.bids[s].is_none()) {
            let mut bids: Vec<u8> = (0..=self.cards as u8).collect();
            if seat == self.dealer {
                let others: usize = self.bids.iter().flatten().sum();
                if others <= self.cards {
                    bids.retain(|&b| b as usize != self.cards - others);
                }
            }
            return (seat, bids);
        }
        let seat = match self.trick.last() {
            None => self.leader,
            Some(&(s, _)) => (s + 1) % self.players,
        };
        let hand = &self.hands[seat];
        let follow: Vec<u8> = match self.trick.first() {
            Some(&(_, led)) => hand
                .iter()
                .copied()
                .filter(|c| c / 13 == led / 13)
                .collect(),
            None => vec![],
        };
        (
            seat,
            if follow.is_empty() {
                hand.clone()
            } else {
                follow
            },
        )
    }

    fn apply(&mut self, seat: usize, action: u8) {
        if self.bids.iter().any(Option::is_none) {
            self.bids[seat] = Some(action as usize);
            return;
        }
        self.hands[seat].retain(|&c| c != action);
        self.trick.push((seat, action));
        if self.trick.len() == self.players {
            let led = self.trick[0].1 / 13;
            let trumps: Vec<&(usize, u8)> = self
                .trick
                .iter()
                .filter(|(_, c)| Some(c / 13) == self.trump)
                .collect();
            let pool: Vec<&(usize, u8)> = if trumps.is_empty() {
                self.trick.iter().filter(|(_, c)| c / 13 == led).collect()
            } else {
                trumps
            };
            let winner = pool.iter().max_by_key(|(_, c)| c % 13).unwrap().0;
            self.tricks[winner] += 1;
            self.leader = winner;
            self.trick.clear();
            self.played_tricks += 1;
        }
    }

    fn perft(&self) -> (u64, u64) {
        if self.played_tricks == self.cards {
            let score = |s: usize| {
                if self.bids[s] == Some(self.tricks[s]) {
                    10 + self.tricks[s] as u64
                } else {
                    0
                }
            };
            return (1, (0..self.players).map(score).sum());
        }
        let (seat, actions) = self.actions();
        actions.iter().fold((0, 0), |(n, total), &a| {
            let mut next = self.clone();
            next.apply(seat, a);
            let (m, t) = next.perft();
            (n + m, total + t)
        })
    }
}

#[test]
fn engine_and_brute_force_count_the_same_games() {
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let tables: [(u8, u8); 6] = [(3, 1), (3, 2), (4, 1), (4, 2), (3, 3), (5, 2)];
    for (players, cards) in tables {
        for trump in [Some(Suit::Spades), Some(Suit::Diamonds), None] {
            let mut deck: Vec<u8> = (0..52).collect();
            deck.shuffle(&mut rng);
            // A small deck of two suits makes following and trumping frequent.
            deck.sort_by_key(|c| (c / 13 == 1 || c / 13 == 3) as u8);
            let dealer = (cards as usize) % players as usize;
            let hands: Vec<Vec<u8>> = (0..players as usize)
                .map(|s| {
                    (0..cards as usize)
                        .map(|i| deck[i * players as usize + s])
                        .collect()
                })
                .collect();
            let sets: Vec<CardSet> = hands
                .iter()
                .map(|h| h.iter().map(|&c| Card::from_index(c).unwrap()).collect())
                .collect();
            let config = RoundConfig {
                players,
                cards,
                dealer: Seat(dealer as u8),
                trump,
            };
            let engine = perft_engine(&Round::new(config, &sets).unwrap());
            let plain = Plain {
                players: players as usize,
                cards: cards as usize,
                dealer,
                trump: trump.map(|t| t as u8),
                hands,
                bids: vec![None; players as usize],
                tricks: vec![0; players as usize],
                trick: vec![],
                leader: (dealer + 1) % players as usize,
                played_tricks: 0,
            }
            .perft();
            assert_eq!(
                engine, plain,
                "{players} players × {cards} cards, trump {trump:?}"
            );
            assert!(engine.0 > 1);
        }
    }
}
