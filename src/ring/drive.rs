//! The one loop a ring client runs: self-play workers, analysis workers, arena threads and
//! `engine bench` all drive their batches through [`drive`].
//!
//! A client splits its work into groups, each with at most one batch in flight per ring (one
//! ring per network: the arena has two). In turn, each group's batches come back
//! ([`Client::take`]) and the group fills its next ones ([`Client::fill`]) while the other
//! groups' batches run, so the search and the network overlap and a thread never waits on a
//! single batch it could have hidden behind another.

use super::{Batch, Ring, RingError, Ticket};

/// Work that needs network rows, in groups.
pub trait Client {
    type Error: From<RingError>;

    /// Puts group `group`'s next rows in `batches` (one per ring, in [`drive`]'s order). Each
    /// comes back as the group last submitted it (its rows and outputs still there, or empty
    /// when new): clear it to fill anew, or leave it to run the same rows again. Empty batches
    /// say the group has nothing to evaluate; when no group has, [`drive`] returns.
    /// `in_flight` counts the other groups' batches on the backends: with none, this call may
    /// block for new work.
    fn fill(
        &mut self,
        group: usize,
        batches: &mut [Batch],
        in_flight: usize,
    ) -> Result<(), Self::Error>;

    /// Reads the outputs of group `group`'s batches once they are back (one per ring; a ring
    /// the group sent nothing to gives an empty batch). Not called for a group with nothing in
    /// flight.
    fn take(&mut self, group: usize, batches: &[Batch]) -> Result<(), Self::Error>;
}

/// Runs `client`'s `groups` groups through `rings` until a whole round of them fills nothing.
/// Every slot is back in its ring when this returns, also on an error (then the client's
/// error, or a ring's).
pub fn drive<C: Client>(rings: &[&Ring], groups: usize, client: &mut C) -> Result<(), C::Error> {
    let mut in_flight: Vec<Vec<Option<Ticket>>> = vec![vec![None; rings.len()]; groups];
    let result = (|| loop {
        let mut busy = false;
        for group in 0..groups {
            let mut batches = Vec::with_capacity(rings.len());
            let came_back = in_flight[group].iter().any(Option::is_some);
            let mut got = Ok(());
            for (ring, ticket) in rings.iter().zip(&mut in_flight[group]) {
                let batch = match ticket.take() {
                    Some(ticket) => ring.wait(ticket),
                    None => ring.acquire(),
                };
                match batch {
                    Ok(batch) => batches.push(batch),
                    Err(e) => {
                        got = Err(e);
                        break;
                    }
                }
            }
            let others = in_flight.iter().flatten().flatten().count();
            let filled = got
                .map_err(C::Error::from)
                .and_then(|()| match came_back {
                    true => client.take(group, &batches),
                    false => Ok(()),
                })
                .and_then(|()| client.fill(group, &mut batches, others));
            if let Err(e) = filled {
                for (ring, batch) in rings.iter().zip(batches) {
                    ring.release(batch);
                }
                return Err(e);
            }
            let mut submitted = Ok(());
            for ((ring, batch), ticket) in rings.iter().zip(batches).zip(&mut in_flight[group]) {
                if batch.rows() == 0 {
                    ring.release(batch);
                } else {
                    busy = true;
                    // A refused batch goes back to its ring's free list.
                    match ring.submit(batch) {
                        Ok(t) => *ticket = Some(t),
                        Err(e) => submitted = Err(e),
                    }
                }
            }
            submitted?;
        }
        if !busy {
            return Ok(());
        }
    })();
    if result.is_err() {
        // Batches still in flight come back to their rings' free lists (outputs unread).
        for tickets in in_flight {
            for (ring, ticket) in rings.iter().zip(tickets) {
                if let Some(batch) = ticket.and_then(|t| ring.wait(t).ok()) {
                    ring.release(batch);
                }
            }
        }
    }
    result
}
