//! A one-slot request mailbox between one requester CPU and one server CPU,
//! where the requester may give up waiting.
//!
//! Pattern: every request carries a sequence number (its [`Ticket`]); the
//! server answers by publishing the number it answered. The requester takes
//! an answer only when the published number is its own ticket, so an answer
//! that arrives after the requester gave up (a timeout) can never be taken
//! for the answer to a later request. While the server still works on an
//! abandoned request, the mailbox is [`Busy`]: a new request is refused
//! rather than written over the words the server may still be reading.
//!
//! Invariants: only the requester writes `request` and, while
//! `request == answered`, the words; only the server writes `answered` and,
//! while `request != answered`, the words. One requester at a time (the
//! boot CPU, with interrupts off).

use core::sync::atomic::{AtomicU64, Ordering};

/// Words carried each way.
pub const WORDS: usize = 8;

/// The sequence number of one request.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Ticket(pub u64);

/// The server has not answered the previous request yet.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Busy;

pub struct Mailbox {
    /// Ticket of the last request posted.
    request: AtomicU64,
    /// Ticket of the last request answered.
    answered: AtomicU64,
    op: AtomicU64,
    words: [AtomicU64; WORDS],
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Mailbox {
    #[must_use]
    pub const fn new() -> Self {
        Mailbox {
            request: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            op: AtomicU64::new(0),
            words: [const { AtomicU64::new(0) }; WORDS],
        }
    }

    /// Requester: posts a request, unless the server still owes the answer
    /// to an earlier one (then nothing is written).
    pub fn post(&self, op: u64, words: [u64; WORDS]) -> Result<Ticket, Busy> {
        let last = self.request.load(Ordering::Relaxed);
        if self.answered.load(Ordering::Acquire) != last {
            return Err(Busy);
        }
        for (slot, w) in self.words.iter().zip(words) {
            slot.store(w, Ordering::Relaxed);
        }
        self.op.store(op, Ordering::Relaxed);
        let ticket = last.wrapping_add(1);
        self.request.store(ticket, Ordering::Release);
        Ok(Ticket(ticket))
    }

    /// Requester: the answer to `ticket`, once the server gave it; never
    /// the answer to any other request (nor to an abandoned ticket once a
    /// newer request was posted).
    #[must_use]
    pub fn answer(&self, ticket: Ticket) -> Option<[u64; WORDS]> {
        if self.request.load(Ordering::Relaxed) != ticket.0
            || self.answered.load(Ordering::Acquire) != ticket.0
        {
            return None;
        }
        Some(core::array::from_fn(|i| {
            self.words[i].load(Ordering::Relaxed)
        }))
    }

    /// Whether the server still owes the answer to the last request (a new
    /// one would be refused with [`Busy`]).
    #[must_use]
    pub fn is_busy(&self) -> bool {
        self.request.load(Ordering::Relaxed) != self.answered.load(Ordering::Acquire)
    }

    /// Server: the request waiting for an answer, if any.
    #[must_use]
    pub fn pending(&self) -> Option<(Ticket, u64, [u64; WORDS])> {
        let ticket = self.request.load(Ordering::Acquire);
        if ticket == self.answered.load(Ordering::Relaxed) {
            return None;
        }
        let words = core::array::from_fn(|i| self.words[i].load(Ordering::Relaxed));
        Some((Ticket(ticket), self.op.load(Ordering::Relaxed), words))
    }

    /// Server: answers `ticket` (from [`Mailbox::pending`]) with `words`.
    pub fn complete(&self, ticket: Ticket, words: [u64; WORDS]) {
        for (slot, w) in self.words.iter().zip(words) {
            slot.store(w, Ordering::Relaxed);
        }
        self.answered.store(ticket.0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::{Busy, Mailbox, WORDS};

    fn w(v: u64) -> [u64; WORDS] {
        [v; WORDS]
    }

    #[test]
    fn a_late_answer_is_never_taken_for_the_next_request() {
        let m = Mailbox::new();
        let first = m.post(1, w(10)).unwrap();
        let (t, op, args) = m.pending().unwrap();
        assert_eq!((t, op, args), (first, 1, w(10)));
        // The requester gives up on `first`; the server is still at work.
        assert_eq!(m.post(2, w(20)), Err(Busy), "the words are still in use");
        assert!(m.is_busy());
        m.complete(t, w(11));
        assert!(!m.is_busy());
        // The late answer is in the box; the next request must not take it.
        let second = m.post(2, w(20)).unwrap();
        assert_eq!(m.answer(second), None);
        assert_eq!(m.answer(first), None, "overwritten by the new request");
        let (t, op, args) = m.pending().unwrap();
        assert_eq!((t, op, args), (second, 2, w(20)));
        m.complete(t, w(21));
        assert_eq!(m.answer(second), Some(w(21)));
        assert_eq!(m.pending(), None);
    }

    #[test]
    fn threads_get_their_own_answers() {
        extern crate std;
        use std::sync::Arc;
        let m = Arc::new(Mailbox::new());
        let server = {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let mut served = 0;
                while served < 1000 {
                    if let Some((t, op, args)) = m.pending() {
                        m.complete(t, [op.wrapping_mul(3).wrapping_add(args[0]); WORDS]);
                        served += 1;
                    }
                    std::thread::yield_now();
                }
            })
        };
        for i in 0..1000u64 {
            let t = loop {
                if let Ok(t) = m.post(i, w(i + 7)) {
                    break t;
                }
            };
            let got = loop {
                if let Some(a) = m.answer(t) {
                    break a;
                }
                std::thread::yield_now();
            };
            assert_eq!(got, w(i * 3 + i + 7));
        }
        server.join().unwrap();
    }
}
