//! The one loop a ring client runs: self-play workers, analysis workers and `engine bench`
//! all drive their batches through [`drive`].
//!
//! A client splits its work into groups, each with at most one batch in flight. In turn, each
//! group's batch comes back ([`Client::take`]) and the group fills its next one
//! ([`Client::fill`]) while the other groups' batches run, so the search and the network
//! overlap and a thread never waits on a single batch it could have hidden behind another.

use super::{Batch, Ring, RingError, Ticket};

/// Work that needs network rows, in groups.
pub trait Client {
    type Error: From<RingError>;

    /// Puts group `group`'s next rows in `batch`, which comes back as the group last
    /// submitted it (its rows and outputs still there, or empty when new): clear it to fill
    /// anew, or leave it to run the same rows again. An empty batch says the group has
    /// nothing to evaluate; when no group has, [`drive`] returns. `in_flight` counts the
    /// other groups' batches on the backend: with none, this call may block for new work.
    fn fill(
        &mut self,
        group: usize,
        batch: &mut Batch,
        in_flight: usize,
    ) -> Result<(), Self::Error>;

    /// Reads the outputs of group `group`'s batch.
    fn take(&mut self, group: usize, batch: &Batch) -> Result<(), Self::Error>;
}

/// Runs `client`'s `groups` groups through `ring` until a whole round of them fills nothing.
/// Every slot is back in the ring when this returns, also on an error (then the client's
/// error, or the ring's).
pub fn drive<C: Client>(ring: &Ring, groups: usize, client: &mut C) -> Result<(), C::Error> {
    let mut in_flight: Vec<Option<Ticket>> = vec![None; groups];
    let result = (|| loop {
        let mut busy = false;
        for group in 0..groups {
            let mut batch = match in_flight[group].take() {
                Some(ticket) => {
                    let batch = ring.wait(ticket)?;
                    if let Err(e) = client.take(group, &batch) {
                        ring.release(batch);
                        return Err(e);
                    }
                    batch
                }
                None => ring.acquire()?,
            };
            let others = in_flight.iter().flatten().count();
            if let Err(e) = client.fill(group, &mut batch, others) {
                ring.release(batch);
                return Err(e);
            }
            if batch.rows() == 0 {
                ring.release(batch);
                continue;
            }
            busy = true;
            in_flight[group] = Some(ring.submit(batch)?);
        }
        if !busy {
            return Ok(());
        }
    })();
    if result.is_err() {
        // Batches still in flight come back to the ring's free list (their outputs unread).
        for ticket in in_flight.into_iter().flatten() {
            if let Ok(batch) = ring.wait(ticket) {
                ring.release(batch);
            }
        }
    }
    result
}
