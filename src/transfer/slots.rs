//! Upload slots: how many peers may download from us at once.
//!
//! Rules, as DC clients have them (and as peers expect, since our slot
//! count is announced in `$MyINFO`/`INF`):
//! - `slots` normal slots. A peer connection takes one for a file request
//!   and keeps it for its next requests (a peer fetching a folder does not
//!   queue again between files); it frees it when it closes, or when it
//!   asks for something that needs no slot.
//! - Small requests need no normal slot: file lists, TTH leaves, and files
//!   of at most [`MINI_SLOT_SIZE`] bytes take a *mini slot*, of which there
//!   are [`MINI_SLOTS`] by default (the `mini_slots` setting), so that browsing and small files never wait
//!   behind large transfers.
//! - A user granted a slot (by a script: `dc.slots.grant`) gets one beyond
//!   the count while the grant lasts.
//! - With every slot taken, the request is refused with "slots full"
//!   (`$MaxedOut` on NMDC, `CSTA 253` on ADC); the peer retries later.
//!
//! Holders are peer connections (`ConnKey`); users are keyed by CID or
//! (hub, nick). This module counts; it never closes a connection.

use std::collections::{HashMap, HashSet};

/// Files up to this size take a mini slot (DC++'s value).
pub const MINI_SLOT_SIZE: u64 = 64 * 1024;

/// How many mini slots there are, beyond the normal ones.
pub const MINI_SLOTS: u32 = 3;

/// A peer connection, as the peer layer numbers them.
pub type ConnKey = u64;

/// What a peer asks for, as far as slots care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A file (or a part of one) of this total size.
    File(u64),
    /// Our file list (full or partial).
    List,
    /// TTH leaves.
    Leaves,
}

/// The kind of slot a request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// One of the announced slots.
    Normal,
    /// A mini slot (small file, list, leaves).
    Mini,
    /// A slot granted to this user beyond the count.
    Granted,
}

/// Every slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("all {slots} upload slots are taken")]
pub struct SlotsFull {
    /// The normal slot count.
    pub slots: u32,
}

/// The upload slots; see the module documentation.
#[derive(Debug, Clone)]
pub struct Slots {
    slots: u32,
    /// How many mini slots ([`MINI_SLOTS`] unless set).
    mini_slots: u32,
    normal: HashMap<ConnKey, Slot>,
    mini: HashSet<ConnKey>,
    granted: HashSet<String>,
}

impl Slots {
    /// `slots` normal slots.
    pub fn new(slots: u32) -> Slots {
        Slots {
            slots,
            mini_slots: MINI_SLOTS,
            normal: HashMap::new(),
            mini: HashSet::new(),
            granted: HashSet::new(),
        }
    }

    /// Changes the mini slot count (the `mini_slots` setting); holders
    /// beyond it keep theirs until they free it.
    pub fn set_mini(&mut self, mini: u32) {
        self.mini_slots = mini;
    }

    /// The normal slot count (as announced).
    pub fn total(&self) -> u32 {
        self.slots
    }

    /// Changes the count; holders beyond it keep their slot until they free it.
    pub fn set_total(&mut self, slots: u32) {
        self.slots = slots;
    }

    /// Normal slots free now (what `$MyINFO`'s tag and `INF FS` announce).
    pub fn free(&self) -> u32 {
        let used = self.normal.values().filter(|s| **s == Slot::Normal).count() as u32;
        self.slots.saturating_sub(used)
    }

    /// Grants `user` a slot beyond the count (until [`Slots::revoke`]).
    pub fn grant(&mut self, user: &str) {
        self.granted.insert(user.to_string());
    }

    /// Ends a grant; a transfer already running keeps its slot.
    pub fn revoke(&mut self, user: &str) -> bool {
        self.granted.remove(user)
    }

    /// Whether `user` holds a grant.
    pub fn is_granted(&self, user: &str) -> bool {
        self.granted.contains(user)
    }

    /// A slot for connection `conn` of `user` asking for `want`.
    pub fn acquire(&mut self, conn: ConnKey, user: &str, want: Want) -> Result<Slot, SlotsFull> {
        // A connection that holds a slot keeps it for whatever it asks next.
        if let Some(&slot) = self.normal.get(&conn) {
            return Ok(slot);
        }
        let small = match want {
            Want::List | Want::Leaves => true,
            Want::File(size) => size <= MINI_SLOT_SIZE,
        };
        if small {
            if self.mini.contains(&conn) || (self.mini.len() as u32) < self.mini_slots {
                self.mini.insert(conn);
                return Ok(Slot::Mini);
            }
        } else {
            // A mini slot does not carry over to a large file.
            self.mini.remove(&conn);
        }
        let slot = if self.free() > 0 {
            Slot::Normal
        } else if self.granted.contains(user) {
            Slot::Granted
        } else {
            return Err(SlotsFull { slots: self.slots });
        };
        self.normal.insert(conn, slot);
        Ok(slot)
    }

    /// Connection `conn` closed: whatever slot it held is free.
    pub fn release(&mut self, conn: ConnKey) {
        self.normal.remove(&conn);
        self.mini.remove(&conn);
    }

    /// How many connections hold a normal or granted slot, and a mini slot.
    pub fn in_use(&self) -> (usize, usize) {
        (self.normal.len(), self.mini.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_slots_are_counted_and_kept_by_their_connection() {
        let mut s = Slots::new(2);
        assert_eq!(s.acquire(1, "a", Want::File(1 << 30)), Ok(Slot::Normal));
        assert_eq!(s.acquire(2, "b", Want::File(1 << 30)), Ok(Slot::Normal));
        assert_eq!(s.free(), 0);
        assert_eq!(s.acquire(3, "c", Want::File(1 << 30)), Err(SlotsFull { slots: 2 }));
        // The holder's next request, even a small one, keeps its slot.
        assert_eq!(s.acquire(1, "a", Want::List), Ok(Slot::Normal));
        assert_eq!(s.acquire(1, "a", Want::File(1 << 20)), Ok(Slot::Normal));
        s.release(2);
        assert_eq!(s.acquire(3, "c", Want::File(1 << 30)), Ok(Slot::Normal));
        assert_eq!(SlotsFull { slots: 2 }.to_string(), "all 2 upload slots are taken");
    }

    #[test]
    fn small_requests_take_mini_slots() {
        let mut s = Slots::new(0);
        assert_eq!(s.acquire(1, "a", Want::List), Ok(Slot::Mini));
        assert_eq!(s.acquire(2, "b", Want::Leaves), Ok(Slot::Mini));
        assert_eq!(s.acquire(3, "c", Want::File(MINI_SLOT_SIZE)), Ok(Slot::Mini));
        assert_eq!(s.acquire(3, "c", Want::File(10)), Ok(Slot::Mini), "kept by its connection");
        assert!(s.acquire(4, "d", Want::List).is_err(), "only {MINI_SLOTS} mini slots");
        assert!(s.acquire(1, "a", Want::File(MINI_SLOT_SIZE + 1)).is_err());
        assert_eq!(s.in_use(), (0, 2), "a large request gave its mini slot back");
        s.release(2);
        assert_eq!(s.acquire(4, "d", Want::List), Ok(Slot::Mini));
    }

    #[test]
    fn the_mini_slot_count_is_a_setting() {
        let mut s = Slots::new(1);
        s.set_mini(1);
        assert_eq!(s.acquire(1, "a", Want::List), Ok(Slot::Mini));
        // The one mini slot is taken: a list takes the normal slot.
        assert_eq!(s.acquire(2, "b", Want::Leaves), Ok(Slot::Normal));
        assert!(s.acquire(3, "c", Want::List).is_err());
        s.set_mini(0);
        s.release(1);
        assert!(s.acquire(4, "d", Want::File(10)).is_err());
    }

    #[test]
    fn granted_users_get_a_slot_beyond_the_count() {
        let mut s = Slots::new(1);
        assert_eq!(s.acquire(1, "a", Want::File(1 << 30)), Ok(Slot::Normal));
        s.grant("friend");
        assert_eq!(s.acquire(2, "friend", Want::File(1 << 30)), Ok(Slot::Granted));
        assert_eq!(s.free(), 0);
        assert!(s.revoke("friend") && !s.is_granted("friend"));
        assert_eq!(
            s.acquire(2, "friend", Want::File(5 << 20)),
            Ok(Slot::Granted),
            "running keeps it"
        );
        assert!(s.acquire(3, "friend", Want::File(1 << 30)).is_err());
        s.set_total(3);
        assert_eq!(s.free(), 2);
    }
}
