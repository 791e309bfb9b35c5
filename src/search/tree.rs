//! One determinized world's search tree: PUCT over the perfect-information game with the
//! world's hands, with value statistics for every seat.
//!
//! Blob is not zero-sum, so each node keeps a value sum and count per seat and selection at a
//! node maximises the value of the seat to move there (max^n):
//! `Q_mover(child) + c_puct · P(child) · √N(node) / (1 + N(child))`, with `N(node)` taken
//! as at least 1 so a node's first selection follows its priors (BlobMaster's `√0` made it the
//! first legal action), exact ties broken at random, and the first-play urgency
//! ([`Fpu`]) standing in for `Q` while a child has no value for the mover.
//!
//! Nodes live in one arena (`Vec`), children contiguous, and store no game state: a
//! simulation replays the actions from the root (apply plus legal mask is about 20 ns per
//! action in `benches/game.rs`, against about 0.4 µs per simulation in `benches/search.rs`),
//! which keeps a node at 68 bytes instead of adding a 160-byte `Round` to every child.
//!
//! A selection ends at
//! - a terminal node: the caller backs up the exact values `value_target(seat)` at once;
//! - an unexpanded node with several legal actions: it is marked in flight and every node on
//!   its path gets a pending visit (a virtual loss) until the caller backs up its evaluation;
//! - an in-flight node (a collision): nothing changes and the caller stops selecting.
//!
//! Nodes with a single legal action are expanded on the way down without an evaluation and
//! cost no simulation (BlobMaster spent a simulation on each).

use super::{Fpu, SearchConfig};
use crate::game::{Phase, Round, Seat, MAX_PLAYERS};
use rand::Rng;

/// Value charged to the selecting seat for each pending visit of a child, so that one batch
/// spreads over different leaves (a loss, the worst value).
const VIRTUAL_LOSS: f32 = 1.0;

/// Seats as a bit set (bit `s` = seat `s`).
pub(crate) type SeatMask = u8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    Unexpanded,
    /// Waiting for its network evaluation.
    InFlight,
    Expanded,
    Terminal,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    /// Sum of the values backed up through this node, per seat.
    value_sum: [f32; MAX_PLAYERS],
    /// Values backed up per seat (all seats in `LeafValues::All`, fewer in `Mover`).
    value_visits: [u16; MAX_PLAYERS],
    /// Simulations through this node.
    visits: u32,
    prior: f32,
    first_child: u32,
    /// Simulations through this node whose leaf is still in flight.
    pending: u16,
    /// The action leading here from the parent.
    action: u8,
    children: u8,
    state: NodeState,
}

// The arena's size per node, claimed in the module doc.
const _: () = assert!(std::mem::size_of::<Node>() == 68);
pub(crate) const NODE_BYTES: u64 = std::mem::size_of::<Node>() as u64;

impl Node {
    fn new(action: u8, prior: f32) -> Node {
        Node {
            value_sum: [0.0; MAX_PLAYERS],
            value_visits: [0; MAX_PLAYERS],
            visits: 0,
            prior,
            first_child: 0,
            pending: 0,
            action,
            children: 0,
            state: NodeState::Unexpanded,
        }
    }

    fn mean(&self, seat: usize) -> Option<f32> {
        let n = self.value_visits[seat];
        (n > 0).then(|| self.value_sum[seat] / f32::from(n))
    }
}

/// Where a selection ended; the path it took is in the caller's `path` buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Selection {
    /// An unexpanded node to evaluate, now in flight; `round` is its state, `mask` its legal
    /// actions.
    Leaf { node: u32, round: Round, mask: u64 },
    /// A finished round.
    Terminal { round: Round },
    /// The path ran into a leaf already in flight.
    Collision,
}

/// A root child's statistics for one seat.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChildStats {
    pub action: u8,
    pub visits: u32,
    pub value_sum: f32,
    pub value_visits: u32,
}

/// One step of a principal variation: who acts, what, and how often the search went there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvStep {
    pub seat: Seat,
    /// A bid or a card index, as [`PvStep::phase`] says.
    pub action: u8,
    /// The phase the action is taken in (a bid, or a card play).
    pub phase: Phase,
    /// Simulations through this step in its world's tree.
    pub visits: u32,
}

#[derive(Clone, Debug)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    /// The world this tree searches (its root state).
    world: Round,
    /// Simulations selected so far, and those whose values have been backed up.
    pub started: u32,
    pub finished: u32,
}

impl Tree {
    pub fn new(world: Round) -> Tree {
        let mut tree = Tree {
            nodes: Vec::new(),
            world,
            started: 0,
            finished: 0,
        };
        tree.reset(world);
        tree
    }

    /// Starts over on `world`, keeping the arena's memory.
    pub fn reset(&mut self, world: Round) {
        self.nodes.clear();
        self.nodes.push(Node::new(0, 1.0));
        self.world = world;
        self.started = 0;
        self.finished = 0;
    }

    pub fn world(&self) -> &Round {
        &self.world
    }

    /// Creates the children of `node`, one per legal action in `mask` in ascending order, with
    /// `priors` in the same order.
    pub fn expand(&mut self, node: u32, mask: u64, priors: &[f32]) {
        let first = self.nodes.len() as u32;
        let mut bits = mask;
        for &prior in &priors[..mask.count_ones() as usize] {
            self.nodes
                .push(Node::new(bits.trailing_zeros() as u8, prior));
            bits &= bits - 1;
        }
        let n = &mut self.nodes[node as usize];
        n.first_child = first;
        n.children = mask.count_ones() as u8;
        n.state = NodeState::Expanded;
    }

    /// Records the root's own evaluation: one visit with `seat`'s value (the first-play
    /// urgency at the root reads it).
    pub fn record_root_value(&mut self, seat: usize, value: f32) {
        let root = &mut self.nodes[0];
        root.visits += 1;
        root.value_sum[seat] += value;
        root.value_visits[seat] += 1;
    }

    /// Walks from the root to a leaf by PUCT, recording the nodes in `path`.
    pub fn select<R: Rng + ?Sized>(
        &mut self,
        config: &SearchConfig,
        rng: &mut R,
        path: &mut Vec<u32>,
    ) -> Selection {
        path.clear();
        let mut node = 0u32;
        let mut round = self.world;
        loop {
            path.push(node);
            match self.nodes[node as usize].state {
                NodeState::Expanded => {
                    let child = self.select_child(node, round.to_act().index(), config, rng);
                    round.apply(self.nodes[child as usize].action);
                    node = child;
                }
                NodeState::Terminal => return Selection::Terminal { round },
                NodeState::InFlight => return Selection::Collision,
                NodeState::Unexpanded if round.is_over() => {
                    self.nodes[node as usize].state = NodeState::Terminal;
                    return Selection::Terminal { round };
                }
                NodeState::Unexpanded => {
                    let mask = round.legal_mask();
                    if mask.is_power_of_two() {
                        // A forced move: no choice to evaluate, walk on.
                        self.expand(node, mask, &[1.0]);
                        round.apply(mask.trailing_zeros() as u8);
                        node = self.nodes[node as usize].first_child;
                        continue;
                    }
                    self.nodes[node as usize].state = NodeState::InFlight;
                    for &n in path.iter() {
                        self.nodes[n as usize].pending += 1;
                    }
                    return Selection::Leaf { node, round, mask };
                }
            }
        }
    }

    fn select_child<R: Rng + ?Sized>(
        &self,
        parent: u32,
        mover: usize,
        config: &SearchConfig,
        rng: &mut R,
    ) -> u32 {
        let p = &self.nodes[parent as usize];
        // √N with N ≥ 1, so a node's first selection follows its priors instead of a tie.
        let explore = config.c_puct * ((p.visits + u32::from(p.pending)).max(1) as f32).sqrt();
        let fpu = match config.fpu {
            Fpu::Reduction(r) => p.mean(mover).unwrap_or(0.0) - r,
            Fpu::Absolute(v) => v,
        };
        let first = p.first_child as usize;
        let mut best = first;
        let mut best_score = f32::NEG_INFINITY;
        let mut ties = 0u32;
        for (i, c) in self.nodes[first..first + usize::from(p.children)]
            .iter()
            .enumerate()
        {
            let pending = f32::from(c.pending);
            let seat_visits = f32::from(c.value_visits[mover]) + pending;
            let q = if seat_visits > 0.0 {
                (c.value_sum[mover] - pending * VIRTUAL_LOSS) / seat_visits
            } else {
                fpu
            };
            let score = q + explore * c.prior / (1.0 + c.visits as f32 + pending);
            if score > best_score {
                best = first + i;
                best_score = score;
                ties = 1;
            } else if score == best_score {
                // Uniform among equal scores (reservoir sampling), not the first legal action.
                ties += 1;
                if rng.random_range(0..ties) == 0 {
                    best = first + i;
                }
            }
        }
        best as u32
    }

    /// Adds one simulation with `values[s]` for each seat `s` in `seats` to every node of
    /// `path`; `was_in_flight` removes the pending visits its selection added.
    pub fn backup(
        &mut self,
        path: &[u32],
        values: &[f32; MAX_PLAYERS],
        seats: SeatMask,
        was_in_flight: bool,
    ) {
        for &n in path {
            let node = &mut self.nodes[n as usize];
            node.visits += 1;
            if was_in_flight {
                node.pending -= 1;
            }
            let mut bits = seats;
            while bits != 0 {
                let s = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                node.value_sum[s] += values[s];
                node.value_visits[s] += 1;
            }
        }
        self.finished += 1;
    }

    /// The line that starts with the root action `action` and then follows the child with the
    /// most visits (ties: the higher prior, then the lower action) while that child has any.
    /// Empty if the root has no such child (not yet expanded, or `action` is illegal).
    pub fn principal_variation(&self, action: u8) -> Vec<PvStep> {
        let mut line = Vec::new();
        let children =
            |n: &Node| n.first_child as usize..n.first_child as usize + usize::from(n.children);
        let Some(mut node) = children(&self.nodes[0]).find(|&c| self.nodes[c].action == action)
        else {
            return line;
        };
        let mut round = self.world;
        loop {
            let n = &self.nodes[node];
            line.push(PvStep {
                seat: round.to_act(),
                action: n.action,
                phase: round.phase(),
                visits: n.visits,
            });
            round.apply(n.action);
            let next = children(n)
                .filter(|&c| self.nodes[c].visits > 0)
                .max_by(|&x, &y| {
                    let (x, y) = (&self.nodes[x], &self.nodes[y]);
                    (x.visits.cmp(&y.visits))
                        .then(x.prior.total_cmp(&y.prior))
                        .then(y.action.cmp(&x.action))
                });
            match next {
                Some(c) => node = c,
                None => return line,
            }
        }
    }

    /// The root's children with `seat`'s statistics.
    pub fn root_children(&self, seat: usize) -> impl Iterator<Item = ChildStats> + '_ {
        let root = &self.nodes[0];
        let first = root.first_child as usize;
        self.nodes[first..first + usize::from(root.children)]
            .iter()
            .map(move |c| ChildStats {
                action: c.action,
                visits: c.visits,
                value_sum: c.value_sum[seat],
                value_visits: u32::from(c.value_visits[seat]),
            })
    }
}
