//! A parsed position → a [`Round`] at that position, checked by replaying its history.
//!
//! The round is rebuilt from the deal the position implies: each seat's current hand plus the
//! cards it has played. Bids and tricks are then replayed through [`Round::try_apply`], so an
//! illegal bid, a card out of turn or a failure to follow suit is an error naming its field.
//!
//! Hidden hands. Without perfect information only the acting seat's cards are read; every
//! other seat contributes its hand size alone. Those hands are filled with a deal sampled
//! (fixed seed) from the acting seat's public information — its hand, the played cards, the
//! hand sizes and the voids shown by not following suit — by the search's own
//! [`WorldSampler`]. Any such filling gives the same search: [`crate::search::Search::new`]
//! resamples every hidden hand from that same information and the encoder reads only the
//! acting seat's view. With perfect information every hand must list its cards, and the
//! round holds the real deal.

use super::query::{ErrorCode, HandSpec, PositionSpec, QueryError, TrickSpec};
use crate::game::{Card, CardSet, Phase, Round, RoundConfig, Seat, Suit, MAX_PLAYERS};
use crate::search::beliefs::{PublicInfo, WorldSampler};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Seed of the deal that fills hidden hands (any consistent deal gives the same answer).
const HIDDEN_FILL_SEED: u64 = 0;

/// A trick with the path of its JSON object, and whether it must be complete.
struct TrickAt<'a> {
    path: String,
    trick: &'a TrickSpec,
    finished: bool,
}

/// Builds the round at `spec`'s position with `spec.player` to act.
pub fn build_round(spec: &PositionSpec, perfect_information: bool) -> Result<Round, QueryError> {
    let players = spec.players();
    let config = RoundConfig {
        players,
        cards: spec.cards_dealt,
        dealer: spec.dealer,
        trump: spec.trump,
    };
    let tricks: Vec<TrickAt> = spec
        .previous_tricks
        .iter()
        .enumerate()
        .map(|(i, trick)| TrickAt {
            path: format!("previous_tricks[{i}]"),
            trick,
            finished: true,
        })
        .chain([TrickAt {
            path: "current_trick".into(),
            trick: &spec.current_trick,
            finished: false,
        }])
        .collect();
    check_trick_lengths(&tricks, players)?;
    let known = known_hands(spec, perfect_information)?;
    check_duplicates(&known, &tricks)?;
    let played = cards_played(spec, &tricks)?;
    check_hand_sizes(spec, &played)?;
    let voids = check_voids(&known, &tricks)?;
    let current = current_hands(spec, &known, &played, &voids)?;

    let mut initial = [CardSet::EMPTY; MAX_PLAYERS];
    for s in 0..usize::from(players) {
        initial[s] = current[s].union(played[s]);
    }
    let mut round = Round::new(config, &initial[..usize::from(players)]).map_err(|e| {
        QueryError::new(
            ErrorCode::Internal,
            "hands",
            format!("the deal was refused: {e}"),
        )
    })?;
    replay_bids(spec, &mut round, &tricks)?;
    replay_tricks(&mut round, &tricks)?;
    if let Some(won) = &spec.tricks_won {
        for seat in round.seats() {
            let (stated, actual) = (won[seat.index()], round.tricks_won(seat));
            if stated != actual {
                return Err(QueryError::new(
                    ErrorCode::InconsistentHistory,
                    format!("tricks_won[{}]", seat.0),
                    format!("{stated}, but {seat} has won {actual} by the trick history"),
                ));
            }
        }
    }
    if round.is_over() {
        return Err(QueryError::new(
            ErrorCode::NotToAct,
            "player",
            "the round is over: every trick has been played",
        ));
    }
    if round.to_act() != spec.player {
        return Err(QueryError::new(
            ErrorCode::NotToAct,
            "player",
            format!("{} is not to act: {} is", spec.player, round.to_act()),
        ));
    }
    Ok(round)
}

fn check_trick_lengths(tricks: &[TrickAt], players: u8) -> Result<(), QueryError> {
    for t in tricks {
        let n = t.trick.cards.len();
        let problem = if t.finished && n != usize::from(players) {
            format!("a finished trick holds one card per seat ({players}), this one {n}")
        } else if !t.finished && n >= usize::from(players) {
            format!("{n} cards: a finished trick belongs in previous_tricks")
        } else {
            continue;
        };
        return Err(QueryError::new(
            ErrorCode::InvalidValue,
            format!("{}.cards", t.path),
            problem,
        ));
    }
    Ok(())
}

/// The hands whose cards are read: the acting seat's, or every seat's with perfect information.
fn known_hands(
    spec: &PositionSpec,
    perfect_information: bool,
) -> Result<Vec<Option<&[Card]>>, QueryError> {
    spec.hands
        .iter()
        .enumerate()
        .map(|(s, hand)| match hand {
            HandSpec::Cards(cards) => Ok(Some(cards.as_slice())),
            HandSpec::Size(_) if s == spec.player.index() => Err(QueryError::new(
                ErrorCode::HiddenHand,
                format!("hands[{s}]"),
                "the acting seat's hand must list its cards",
            )),
            HandSpec::Size(_) if perfect_information => Err(QueryError::new(
                ErrorCode::HiddenHand,
                format!("hands[{s}]"),
                "perfect_information needs every hand's cards, not a hand size",
            )),
            HandSpec::Size(_) => Ok(None),
        })
        .collect()
}

/// Every card read (known hands and the history) appears at most once.
fn check_duplicates(known: &[Option<&[Card]>], tricks: &[TrickAt]) -> Result<(), QueryError> {
    let mut first_seen: [Option<String>; 52] = std::array::from_fn(|_| None);
    let hand_cards = known.iter().enumerate().flat_map(|(s, hand)| {
        hand.unwrap_or_default()
            .iter()
            .enumerate()
            .map(move |(i, &c)| (format!("hands[{s}][{i}]"), c))
    });
    let trick_cards = tricks.iter().flat_map(|t| {
        t.trick
            .cards
            .iter()
            .enumerate()
            .map(move |(i, &(_, c))| (format!("{}.cards[{i}][1]", t.path), c))
    });
    for (path, card) in hand_cards.chain(trick_cards) {
        let slot = &mut first_seen[usize::from(card.index())];
        if let Some(first) = slot {
            return Err(QueryError::new(
                ErrorCode::DuplicateCard,
                path,
                format!("card {} ({card}) already appears at {first}", card.index()),
            ));
        }
        *slot = Some(path);
    }
    Ok(())
}

/// The cards each seat has played, checking no seat played more than it was dealt.
fn cards_played(
    spec: &PositionSpec,
    tricks: &[TrickAt],
) -> Result<[CardSet; MAX_PLAYERS], QueryError> {
    let mut played = [CardSet::EMPTY; MAX_PLAYERS];
    for t in tricks {
        for (i, &(seat, card)) in t.trick.cards.iter().enumerate() {
            let set = &mut played[seat.index()];
            set.insert(card);
            if set.len() > u32::from(spec.cards_dealt) {
                return Err(QueryError::new(
                    ErrorCode::IllegalPlay,
                    format!("{}.cards[{i}]", t.path),
                    format!(
                        "{seat} plays more cards than the {} dealt",
                        spec.cards_dealt
                    ),
                ));
            }
        }
    }
    Ok(played)
}

fn check_hand_sizes(
    spec: &PositionSpec,
    played: &[CardSet; MAX_PLAYERS],
) -> Result<(), QueryError> {
    for (s, hand) in spec.hands.iter().enumerate() {
        let expected = u32::from(spec.cards_dealt) - played[s].len();
        if hand.size() != expected as usize {
            return Err(QueryError::new(
                ErrorCode::WrongHandSize,
                format!("hands[{s}]"),
                format!(
                    "{} cards, but seat {s} was dealt {} and has played {}, so holds {expected}",
                    hand.size(),
                    spec.cards_dealt,
                    played[s].len()
                ),
            ));
        }
    }
    Ok(())
}

/// Voids shown by not following suit (bit `suit` per seat); a known hand must not hold them.
fn check_voids(
    known: &[Option<&[Card]>],
    tricks: &[TrickAt],
) -> Result<[u8; MAX_PLAYERS], QueryError> {
    let mut voids = [0u8; MAX_PLAYERS];
    let mut shown_at: Vec<(Seat, Suit, String)> = vec![];
    for t in tricks {
        let Some(&(_, lead)) = t.trick.cards.first() else {
            continue;
        };
        for (i, &(seat, card)) in t.trick.cards.iter().enumerate().skip(1) {
            if card.suit() != lead.suit() {
                voids[seat.index()] |= 1 << lead.suit().index();
                shown_at.push((seat, lead.suit(), format!("{}.cards[{i}]", t.path)));
            }
        }
    }
    for (seat, suit, at) in shown_at {
        let Some(hand) = known[seat.index()] else {
            continue;
        };
        if let Some(card) = hand.iter().find(|c| c.suit() == suit) {
            return Err(QueryError::new(
                ErrorCode::ImpossibleVoid,
                format!("hands[{}]", seat.0),
                format!(
                    "holds {card}, but {seat} showed it has no {} by not following suit at {at}",
                    suit.symbol()
                ),
            ));
        }
    }
    Ok(voids)
}

/// Every seat's current hand: the known ones as given, the hidden ones filled with a deal
/// consistent with the acting seat's public information.
fn current_hands(
    spec: &PositionSpec,
    known: &[Option<&[Card]>],
    played: &[CardSet; MAX_PLAYERS],
    voids: &[u8; MAX_PLAYERS],
) -> Result<[CardSet; MAX_PLAYERS], QueryError> {
    let mut hands = [CardSet::EMPTY; MAX_PLAYERS];
    for (s, hand) in known.iter().enumerate() {
        if let Some(cards) = hand {
            hands[s] = cards.iter().copied().collect();
        }
    }
    if known.iter().all(Option::is_some) {
        return Ok(hands);
    }
    let me = spec.player;
    let all_played = played.iter().fold(CardSet::EMPTY, |a, &p| a.union(p));
    let mut hand_sizes = [0; MAX_PLAYERS];
    for (s, hand) in spec.hands.iter().enumerate() {
        hand_sizes[s] = hand.size() as u8;
    }
    let info = PublicInfo {
        me,
        players: spec.players(),
        my_hand: hands[me.index()],
        unseen: CardSet::DECK.minus(hands[me.index()]).minus(all_played),
        hand_sizes,
        voids: *voids,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(HIDDEN_FILL_SEED);
    let filled = WorldSampler::new()
        .sample_hands(&info, &mut rng)
        .map_err(|e| {
            QueryError::new(
                ErrorCode::ImpossibleVoid,
                "hands",
                format!("the hidden hands cannot be completed: {e}"),
            )
        })?;
    for (s, hand) in known.iter().enumerate() {
        if hand.is_none() {
            hands[s] = filled[s];
        }
    }
    Ok(hands)
}

/// Replays the bids in bidding order (from the dealer's left); they must be a prefix of it,
/// complete once any card has been played.
fn replay_bids(
    spec: &PositionSpec,
    round: &mut Round,
    tricks: &[TrickAt],
) -> Result<(), QueryError> {
    let players = spec.players();
    let first = spec.dealer.next(players);
    let order: Vec<Seat> = std::iter::successors(Some(first), |s| Some(s.next(players)))
        .take(usize::from(players))
        .collect();
    let made = order
        .iter()
        .take_while(|s| spec.bids[s.index()].is_some())
        .count();
    for &seat in &order[..made] {
        let bid = spec.bids[seat.index()].expect("a made bid");
        if !round.is_legal(bid) {
            let why = if bid > spec.cards_dealt {
                format!("bid {bid} exceeds the {} cards dealt", spec.cards_dealt)
            } else {
                format!(
                    "the dealer may not bid {bid}: the bids would add up to the {} cards dealt",
                    spec.cards_dealt
                )
            };
            return Err(QueryError::new(
                ErrorCode::IllegalBid,
                format!("bids[{}]", seat.0),
                why,
            ));
        }
        round.apply(bid);
    }
    if let Some(&late) = order[made..]
        .iter()
        .find(|s| spec.bids[s.index()].is_some())
    {
        return Err(QueryError::new(
            ErrorCode::IllegalBid,
            format!("bids[{}]", late.0),
            format!(
                "{late} has bid but {} has not (bidding goes clockwise from {first})",
                order[made]
            ),
        ));
    }
    let any_played = tricks.iter().any(|t| !t.trick.cards.is_empty());
    if round.phase() == Phase::Bidding && any_played {
        return Err(QueryError::new(
            ErrorCode::IllegalBid,
            format!("bids[{}]", order[made].0),
            "missing, but cards have already been played",
        ));
    }
    Ok(())
}

/// Replays every trick card; checks stated leaders and winners.
fn replay_tricks(round: &mut Round, tricks: &[TrickAt]) -> Result<(), QueryError> {
    for t in tricks {
        if let Some(leader) = t.trick.leader {
            if leader != round.leader() {
                return Err(QueryError::new(
                    ErrorCode::InconsistentHistory,
                    format!("{}.leader", t.path),
                    format!("{leader}, but {} leads by the history", round.leader()),
                ));
            }
        }
        for (i, &(seat, card)) in t.trick.cards.iter().enumerate() {
            let at = format!("{}.cards[{i}]", t.path);
            if seat != round.to_act() {
                return Err(QueryError::new(
                    ErrorCode::IllegalPlay,
                    at,
                    format!(
                        "{seat} plays {card} out of turn: {} is to play",
                        round.to_act()
                    ),
                ));
            }
            if !round.is_legal(card.index()) {
                // The seat holds every card it plays later, so this can only be a failure to
                // follow suit.
                let led = round.trick().first().map_or(card.suit(), |c| c.suit());
                let held: Vec<String> = round
                    .hand(seat)
                    .of_suit(led)
                    .iter()
                    .map(|c| c.to_string())
                    .collect();
                return Err(QueryError::new(
                    ErrorCode::IllegalPlay,
                    at,
                    format!(
                        "{seat} plays {card} but must follow {}: it still holds {}",
                        led.symbol(),
                        held.join(" ")
                    ),
                ));
            }
            round.apply(card.index());
        }
        match t.trick.winner {
            Some(_) if !t.finished => {
                return Err(QueryError::new(
                    ErrorCode::InvalidValue,
                    format!("{}.winner", t.path),
                    "the current trick is not finished: it has no winner yet",
                ))
            }
            Some(winner) if winner != round.leader() => {
                return Err(QueryError::new(
                    ErrorCode::InconsistentHistory,
                    format!("{}.winner", t.path),
                    format!(
                        "{winner}, but the rules give the trick to {}",
                        round.leader()
                    ),
                ))
            }
            _ => {}
        }
    }
    Ok(())
}
