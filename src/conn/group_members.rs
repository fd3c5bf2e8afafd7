//! A group's members: a dense vector that a broadcast walks, and stable ids that find a member in O(1).
//!
//! Broadcasts outnumber joins and leaves, so the senders sit in one contiguous `Vec` with no holes to skip. Each
//! member's [`MemberId`] names a slot of a side table that holds the member's current position; removal is a
//! `swap_remove` plus one slot update. A slot's generation changes when its member leaves, so an old id never
//! names a later member of the same slot; a slot whose generation would wrap is retired instead of reused.

use bytes::Bytes;

use crate::watermark::Sender;

/// Names a member of a [`Group`](super::Group), as returned by [`add`](super::Group::add).
///
/// An id stays valid until its member is removed or pruned; after that it names nobody (it is never reused for
/// another member), so a late [`remove`](super::Group::remove) with it is harmless.
///
/// # Examples
///
/// ```
/// use tidegate::conn::Group;
///
/// let group = Group::new();
/// let (tx, _rx) = tidegate::watermark::channel(Default::default());
/// let id = group.add(tx);
/// assert!(group.remove(id).is_some());
/// assert!(group.remove(id).is_none()); // gone: the id names nobody now
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberId {
    slot: u32,
    generation: u32,
}

pub(crate) struct Member {
    pub(crate) sender: Sender<Bytes>,
    pub(crate) id: MemberId,
}

/// A slot's position when it holds no member.
const VACANT: u32 = u32::MAX;

struct Slot {
    generation: u32,
    position: u32,
}

#[derive(Default)]
pub(crate) struct Members {
    dense: Vec<Member>,
    slots: Vec<Slot>,
    /// Vacant slots that can be reused.
    free: Vec<u32>,
}

impl Members {
    pub(crate) fn as_slice(&self) -> &[Member] {
        &self.dense
    }

    pub(crate) fn len(&self) -> usize {
        self.dense.len()
    }

    /// # Panics
    ///
    /// With `u32::MAX - 1` members already, or as many slots (members plus slots retired after 2^32 reuses each):
    /// hundreds of GiB of queues before that.
    pub(crate) fn insert(&mut self, sender: Sender<Bytes>) -> MemberId {
        const TOO_MANY: &str = "a group holds fewer than u32::MAX members";
        let position = u32::try_from(self.dense.len())
            .ok()
            .filter(|&p| p != VACANT)
            .expect(TOO_MANY);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.slots.len()).expect(TOO_MANY);
                self.slots.push(Slot {
                    generation: 0,
                    position: VACANT,
                });
                slot
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.position = position;
        let id = MemberId {
            slot,
            generation: entry.generation,
        };
        self.dense.push(Member { sender, id });
        id
    }

    /// Removes the member `id` names, if it is still here, and hands its sender back.
    pub(crate) fn remove(&mut self, id: MemberId) -> Option<Sender<Bytes>> {
        let slot = self.slots.get_mut(id.slot as usize)?;
        if slot.generation != id.generation || slot.position == VACANT {
            return None;
        }
        let position = slot.position as usize;
        slot.position = VACANT;
        if let Some(next) = slot.generation.checked_add(1) {
            slot.generation = next;
            self.free.push(id.slot);
        }
        let member = self.dense.swap_remove(position);
        if let Some(moved) = self.dense.get(position) {
            self.slots[moved.id.slot as usize].position = position as u32;
        }
        // After a spike of members, give most of the dense vector back (amortised: it halves at most once per
        // quarter-full); the side table keeps its peak size, 8 bytes a slot.
        if self.dense.capacity() > 64 && self.dense.len() < self.dense.capacity() / 4 {
            self.dense.shrink_to(self.dense.capacity() / 2);
        }
        Some(member.sender)
    }

    /// Removes every member whose queue is closed, calling `pruned` with each one's sender.
    pub(crate) fn remove_closed(&mut self, mut pruned: impl FnMut(Sender<Bytes>)) {
        let mut position = 0;
        while let Some(member) = self.dense.get(position) {
            if member.sender.is_closed() {
                let id = member.id;
                // `swap_remove` moves the last member here: look at this position again.
                pruned(
                    self.remove(id)
                        .expect("a member in the dense vector has its slot"),
                );
            } else {
                position += 1;
            }
        }
    }
}

#[cfg(all(test, not(tidegate_loom)))]
mod tests {
    use super::*;
    use crate::watermark;

    /// A sender whose queue stays open while `receivers` lives.
    fn sender(receivers: &mut Vec<watermark::Receiver<Bytes>>) -> Sender<Bytes> {
        let (tx, rx) = watermark::channel(Default::default());
        receivers.push(rx);
        tx
    }

    /// The dense positions and the side table agree after every change.
    fn check(members: &Members) {
        for (position, member) in members.dense.iter().enumerate() {
            let slot = &members.slots[member.id.slot as usize];
            assert_eq!(slot.position as usize, position);
            assert_eq!(slot.generation, member.id.generation);
        }
        let occupied = members
            .slots
            .iter()
            .filter(|s| s.position != VACANT)
            .count();
        assert_eq!(occupied, members.dense.len());
    }

    #[test]
    fn ids_survive_swap_remove_and_old_ids_name_nobody() {
        let (mut members, mut rxs) = (Members::default(), Vec::new());
        let ids: Vec<_> = (0..5).map(|_| members.insert(sender(&mut rxs))).collect();
        assert!(members.remove(ids[1]).is_some());
        check(&members);
        assert!(members.remove(ids[1]).is_none());
        let reused = members.insert(sender(&mut rxs));
        assert_eq!(reused.slot, ids[1].slot, "a vacant slot is reused");
        assert_ne!(reused, ids[1]);
        assert!(
            members.remove(ids[1]).is_none(),
            "the old id does not name the new member"
        );
        for id in [ids[0], ids[4], reused, ids[2], ids[3]] {
            assert!(members.remove(id).is_some());
            check(&members);
        }
        assert_eq!(members.len(), 0);
    }

    #[test]
    fn a_slot_whose_generation_would_wrap_is_retired() {
        let (mut members, mut rxs) = (Members::default(), Vec::new());
        let id = members.insert(sender(&mut rxs));
        members.slots[id.slot as usize].generation = u32::MAX;
        let last = MemberId {
            slot: id.slot,
            generation: u32::MAX,
        };
        assert!(members.remove(last).is_some());
        assert!(members.free.is_empty(), "not reused");
        assert!(members.remove(last).is_none());
        let next = members.insert(sender(&mut rxs));
        assert_ne!(next.slot, id.slot);
        check(&members);
    }

    #[test]
    fn remove_closed_keeps_open_members_and_their_ids() {
        let (mut members, mut rxs) = (Members::default(), Vec::new());
        let (a, b, c) = (sender(&mut rxs), sender(&mut rxs), sender(&mut rxs));
        let (close_a, close_c) = (a.clone(), c.clone());
        let ids = [members.insert(a), members.insert(b), members.insert(c)];
        close_a.close();
        close_c.abort();
        let mut pruned = 0;
        members.remove_closed(|sender| {
            assert!(sender.is_closed());
            pruned += 1;
        });
        assert_eq!((pruned, members.len()), (2, 1));
        check(&members);
        assert!(members.remove(ids[1]).is_some());
    }
}
