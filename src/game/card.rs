//! Cards, suits and bitset hands.
//!
//! Card index = `suit * 13 + rank` with suits ♠ ♥ ♣ ♦ (0..=3) and ranks 2..A (0..=12), the
//! numbering BlobMaster's encoder and action space use.

use std::fmt;

pub const DECK_SIZE: usize = 52;
pub const RANKS: u8 = 13;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Suit {
    Spades = 0,
    Hearts = 1,
    Clubs = 2,
    Diamonds = 3,
}

impl Suit {
    pub const ALL: [Suit; 4] = [Suit::Spades, Suit::Hearts, Suit::Clubs, Suit::Diamonds];

    pub fn from_index(i: u8) -> Option<Suit> {
        Suit::ALL.get(i as usize).copied()
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// All 13 cards of this suit.
    pub fn cards(self) -> CardSet {
        CardSet(0x1FFF << (13 * self as u32))
    }

    pub fn symbol(self) -> char {
        ['♠', '♥', '♣', '♦'][self as usize]
    }
}

/// One card, `suit * 13 + rank`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Card(u8);

impl Card {
    pub fn new(suit: Suit, rank: u8) -> Card {
        debug_assert!(rank < RANKS);
        Card(suit as u8 * RANKS + rank)
    }

    /// The card with this index, if it is in 0..52.
    pub fn from_index(i: u8) -> Option<Card> {
        (usize::from(i) < DECK_SIZE).then_some(Card(i))
    }

    pub fn index(self) -> u8 {
        self.0
    }

    pub fn suit(self) -> Suit {
        Suit::ALL[(self.0 / RANKS) as usize]
    }

    /// 0 = two … 12 = ace.
    pub fn rank(self) -> u8 {
        self.0 % RANKS
    }

    fn bit(self) -> u64 {
        1 << self.0
    }
}

impl fmt::Display for Card {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const RANK: [&str; 13] = [
            "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K", "A",
        ];
        write!(f, "{}{}", RANK[self.rank() as usize], self.suit().symbol())
    }
}

/// A set of cards as a 52-bit mask (bit = card index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CardSet(pub u64);

impl CardSet {
    pub const EMPTY: CardSet = CardSet(0);
    pub const DECK: CardSet = CardSet((1 << DECK_SIZE) - 1);

    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, card: Card) -> bool {
        self.0 & card.bit() != 0
    }

    pub fn insert(&mut self, card: Card) {
        self.0 |= card.bit();
    }

    pub fn remove(&mut self, card: Card) {
        self.0 &= !card.bit();
    }

    pub fn of_suit(self, suit: Suit) -> CardSet {
        CardSet(self.0 & suit.cards().0)
    }

    pub fn union(self, other: CardSet) -> CardSet {
        CardSet(self.0 | other.0)
    }

    pub fn minus(self, other: CardSet) -> CardSet {
        CardSet(self.0 & !other.0)
    }

    pub fn intersection(self, other: CardSet) -> CardSet {
        CardSet(self.0 & other.0)
    }

    /// Cards in index order.
    pub fn iter(self) -> impl Iterator<Item = Card> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let i = bits.trailing_zeros() as u8;
                bits &= bits - 1;
                Card(i)
            })
        })
    }
}

impl FromIterator<Card> for CardSet {
    fn from_iter<I: IntoIterator<Item = Card>>(iter: I) -> CardSet {
        let mut set = CardSet::EMPTY;
        for c in iter {
            set.insert(c);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_index_matches_blobmaster() {
        assert_eq!(Card::new(Suit::Spades, 0).index(), 0);
        assert_eq!(Card::new(Suit::Spades, 12).index(), 12);
        assert_eq!(Card::new(Suit::Hearts, 0).index(), 13);
        assert_eq!(Card::new(Suit::Clubs, 12).index(), 38);
        assert_eq!(Card::new(Suit::Diamonds, 12).index(), 51);
        assert_eq!(Card::from_index(52), None);
        assert_eq!(Card::from_index(25).unwrap().to_string(), "A♥");
    }

    #[test]
    fn card_set_operations() {
        let mut s = CardSet::EMPTY;
        s.insert(Card::new(Suit::Hearts, 3));
        s.insert(Card::new(Suit::Diamonds, 12));
        assert_eq!(s.len(), 2);
        assert_eq!(s.of_suit(Suit::Hearts).len(), 1);
        assert_eq!(s.iter().map(Card::index).collect::<Vec<_>>(), vec![16, 51]);
        s.remove(Card::new(Suit::Hearts, 3));
        assert!(!s.contains(Card::new(Suit::Hearts, 3)));
        assert_eq!(CardSet::DECK.len(), 52);
    }
}
