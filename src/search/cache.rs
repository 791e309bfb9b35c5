//! A bounded cache of network evaluations keyed by the encoded input.
//!
//! Determinized worlds of one decision share every position seen from the searching seat
//! (the encoder only reads that seat's information), and consecutive decisions revisit the
//! same subtrees, so identical rows recur often. The key is a 128-bit hash of the 256 input
//! floats' bits and the legal mask; a false hit needs a 128-bit collision. The table is
//! direct-mapped with a power-of-two size and always replaces, so its memory is fixed.
//!
//! An entry stores the value and the policy restricted to the legal actions (at most
//! [`MAX_LEGAL`] of them: bids 0..=13 or a hand of at most 13 cards), in the mask's bit order.

use crate::encode::Encoding;
use crate::net::POLICY_DIM;

/// Most legal actions a position can have: 14 bids (0..=13).
pub const MAX_LEGAL: usize = 14;

/// Identity of one network row: a 128-bit hash of its input and mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RowKey(u64, u64);

/// Hasher for maps keyed by [`RowKey`]: the key is already a strong hash, so its two words
/// are combined as they are (std's SipHash over them cost ~5% of a search).
#[derive(Default)]
pub struct RowKeyHasher(u64);

impl std::hash::Hasher for RowKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only RowKey's two u64 words are hashed here (write_u64); stay correct for anything.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(29) ^ n;
    }
}

/// A hash map keyed by [`RowKey`] (see [`RowKeyHasher`]).
pub type RowKeyMap<V> =
    std::collections::HashMap<RowKey, V, std::hash::BuildHasherDefault<RowKeyHasher>>;

impl RowKey {
    /// Hashes the input's bits and the mask: each half of the input goes through two
    /// wyhash-style chains that read the same words in swapped roles (128 bits of state per
    /// half), and the halves' chains run side by side, so the CPU overlaps their multiplies
    /// (this runs once per requested row, on the search's hot path).
    pub fn of(input: &Encoding, mask: u64) -> RowKey {
        const SECRETS: [u64; 4] = [
            0xa076_1d64_78bd_642f,
            0xe703_7ed1_a0b4_28db,
            0x8ebc_6af0_9c88_c6e3,
            0x5899_65cc_7537_4cc3,
        ];
        let word = |x: &[f32]| u64::from(x[0].to_bits()) | u64::from(x[1].to_bits()) << 32;
        let (first, second) = input.split_at(input.len() / 2);
        let mut a = [mask ^ SECRETS[0], mask ^ SECRETS[1]];
        let mut b = [
            mask.rotate_left(32) ^ SECRETS[2],
            mask.rotate_left(32) ^ SECRETS[3],
        ];
        for (x, y) in first.chunks_exact(4).zip(second.chunks_exact(4)) {
            for (h, half) in [x, y].into_iter().enumerate() {
                let (lo, hi) = (word(half), word(&half[2..]));
                a[h] = fold_mul(lo ^ SECRETS[1], hi ^ a[h]);
                b[h] = fold_mul(hi ^ SECRETS[3], lo ^ b[h]);
            }
        }
        // Join the halves, then a final avalanche so the table index (low bits) depends on
        // every input bit.
        let a = fold_mul(a[0] ^ SECRETS[2], a[1] ^ SECRETS[0]);
        let b = fold_mul(b[0] ^ SECRETS[1], b[1] ^ SECRETS[3]);
        RowKey(
            fold_mul(a ^ SECRETS[2], b ^ SECRETS[1]),
            fold_mul(b, a ^ SECRETS[0]),
        )
    }

    fn slot(self, slots: usize) -> usize {
        self.0 as usize & (slots - 1)
    }
}

/// 64×64→128-bit multiply folded back to 64 bits (wyhash's mixing step).
fn fold_mul(a: u64, b: u64) -> u64 {
    let r = u128::from(a) * u128::from(b);
    r as u64 ^ (r >> 64) as u64
}

/// A cached evaluation: the value and the priors of the legal actions in mask-bit order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CachedEval {
    pub value: f32,
    pub priors: [f32; MAX_LEGAL],
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    key: Option<RowKey>,
    eval: CachedEval,
}

/// The cache. Capacity 0 disables it (every lookup misses), which makes a search's result
/// independent of what earlier searches evaluated.
#[derive(Clone, Debug)]
pub struct EvalCache {
    slots: Vec<Slot>,
    hits: u64,
    misses: u64,
}

impl EvalCache {
    /// Most entries of a cache sized for one search ([`EvalCache::for_search`]).
    pub const MAX_SEARCH_ENTRIES: usize = 1 << 16;

    /// A cache for one search with `config` at a table of `players`: room for every row it
    /// can evaluate (worlds × simulations × rows per leaf, plus its belief rows), at most
    /// [`EvalCache::MAX_SEARCH_ENTRIES`].
    pub fn for_search(config: &super::SearchConfig, players: u8) -> EvalCache {
        let rows =
            config.worlds as usize * config.sims_per_world as usize * config.rows_per_leaf(players)
                + config.belief_rows_bound();
        EvalCache::new(rows.clamp(1, Self::MAX_SEARCH_ENTRIES))
    }

    /// Bytes of the entries of [`EvalCache::new`]`(capacity)`.
    pub fn bytes(capacity: usize) -> u64 {
        let slots = if capacity == 0 {
            0
        } else {
            capacity.next_power_of_two()
        };
        (slots * std::mem::size_of::<Slot>()) as u64
    }

    /// A cache of at least `capacity` entries (rounded up to a power of two); about 80 bytes each.
    pub fn new(capacity: usize) -> EvalCache {
        let slots = if capacity == 0 {
            0
        } else {
            capacity.next_power_of_two()
        };
        EvalCache {
            slots: vec![
                Slot {
                    key: None,
                    eval: CachedEval {
                        value: 0.0,
                        priors: [0.0; MAX_LEGAL],
                    },
                };
                slots
            ],
            hits: 0,
            misses: 0,
        }
    }

    /// A cache that stores nothing.
    pub fn disabled() -> EvalCache {
        EvalCache::new(0)
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn hits(&self) -> u64 {
        self.hits
    }

    pub fn misses(&self) -> u64 {
        self.misses
    }

    /// The evaluation stored under `key`, counting a hit or a miss.
    pub fn get(&mut self, key: RowKey) -> Option<CachedEval> {
        let found = if self.slots.is_empty() {
            None
        } else {
            let slot = &self.slots[key.slot(self.slots.len())];
            (slot.key == Some(key)).then_some(slot.eval)
        };
        match found {
            Some(_) => self.hits += 1,
            None => self.misses += 1,
        }
        found
    }

    /// Stores a network output (`policy` is the full 52-wide row) under `key`, replacing
    /// whatever held its slot. Rows whose mask allows more than [`MAX_LEGAL`] actions (the
    /// value-only rows of other seats) keep no priors.
    pub fn insert(&mut self, key: RowKey, mask: u64, policy: &[f32], value: f32) {
        if self.slots.is_empty() {
            return;
        }
        let i = key.slot(self.slots.len());
        self.slots[i] = Slot {
            key: Some(key),
            eval: CachedEval {
                value,
                priors: legal_priors(mask, policy),
            },
        };
    }

    /// Forgets every entry and zeroes the counters.
    pub fn clear(&mut self) {
        for slot in &mut self.slots {
            slot.key = None;
        }
        self.hits = 0;
        self.misses = 0;
    }
}

/// The policy entries of the legal actions in mask-bit order, renormalised to sum to 1
/// (uniform if the network gave them no mass). Empty when more than [`MAX_LEGAL`] are legal.
pub(crate) fn legal_priors(mask: u64, policy: &[f32]) -> [f32; MAX_LEGAL] {
    debug_assert_eq!(policy.len(), POLICY_DIM);
    let mut priors = [0.0; MAX_LEGAL];
    let legal = mask.count_ones() as usize;
    if legal > MAX_LEGAL {
        return priors;
    }
    let mut bits = mask;
    let mut sum = 0.0;
    for p in priors.iter_mut().take(legal) {
        let a = bits.trailing_zeros() as usize;
        bits &= bits - 1;
        *p = policy[a].max(0.0);
        sum += *p;
    }
    if sum > 0.0 && sum.is_finite() {
        priors[..legal].iter_mut().for_each(|p| *p /= sum);
    } else {
        priors[..legal].fill(1.0 / legal as f32);
    }
    priors
}
