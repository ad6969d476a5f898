//! The ledger's commit path: [`Ledger::begin`], the `put` family that stages changed words,
//! and [`Ledger::commit`] / [`Ledger::settle`], which write them durably as one change-log
//! record (a small commit) or one journal (anything larger, and the log's settling).
//!
//! Invariants (the module doc of [`super`] has the protocol): a word is staged at most once
//! per commit and only if it differs from the image; the commit point is one aligned store
//! after a compiler fence; nothing a commit writes before its commit point is visible to
//! recovery, and everything after it is redone by recovery if the task dies.

use super::{
    chain, hdr, mix, Ledger, JOURNAL_HEAD, LOG_ENTRY, LOG_HEAD, LOG_MAX_WORDS, LOG_WORDS,
    PAGE_WORDS,
};

impl Ledger<'_> {
    /// Starts a commit.
    #[inline]
    pub fn begin(&mut self) {
        self.jlen = 0;
        self.jsum = 0;
        self.ext = None;
        self.pages.clear();
        self.nstaged = 0;
        self.spilled = false;
    }

    /// Image word `i` (data) should now be `v`: recorded if it differs. Each word at most once
    /// per commit, data sections only. Most words a commit offers are unchanged, so the
    /// comparison is inline and the recording out of line.
    #[inline]
    pub fn put(&mut self, i: usize, v: u64) {
        match self.words.get(i) {
            Some(&old) if old != v && i < self.layout.data_words => self.change_one(i, old, v),
            _ => {}
        }
    }

    /// [`Self::put`] for a commit of a few words (a one-frame request's): the change is
    /// staged inline, not through a call.
    #[inline(always)]
    pub fn put_small(&mut self, i: usize, v: u64) {
        match self.words.get(i) {
            Some(&old) if old != v && i < self.layout.data_words => self.change(i, old, v),
            _ => {}
        }
    }

    /// [`Self::put`] of consecutive image words from `first` (`values[k]` for word
    /// `first + k`): the run is bounds-checked once and compared in one tight loop, so an
    /// unchanged word costs a load and a compare. A run reaching past the data is put word by
    /// word (each word outside the data is ignored, as by `put`).
    #[inline(always)]
    pub fn put_run(&mut self, first: usize, values: &[u64]) {
        let end = first.saturating_add(values.len());
        if end > self.layout.data_words || end > self.words.len() {
            self.put_each(first, values);
            return;
        }
        for (k, &v) in values.iter().enumerate() {
            let old = self.words[first + k];
            if old != v {
                self.change_one(first + k, old, v);
            }
        }
    }

    /// [`Self::put_run`] of a fixed number of words (a pool's counts, a record, the
    /// counters): one xor-or over the run (unrolled, no branch per word) says whether any word
    /// differs, and only then are they compared one by one.
    #[inline(always)]
    pub fn put_words<const N: usize>(&mut self, first: usize, values: &[u64; N]) {
        let end = first.saturating_add(N);
        let image = match self.words.get(first..end) {
            Some(w) if end <= self.layout.data_words => w,
            _ => {
                self.put_each(first, values);
                return;
            }
        };
        let mut differ = 0u64;
        for k in 0..N {
            differ |= image[k] ^ values[k];
        }
        if differ != 0 {
            self.put_changed(first, values);
        }
    }

    /// [`Self::put_words`] of a run with a changed word (inside the data, checked).
    #[inline(never)]
    fn put_changed(&mut self, first: usize, values: &[u64]) {
        for (k, &v) in values.iter().enumerate() {
            let old = self.words[first + k];
            if old != v {
                self.change(first + k, old, v);
            }
        }
    }

    /// [`Self::put_run`] of a run reaching past the data: word by word (each word outside the
    /// data ignored, as by `put`).
    #[cold]
    fn put_each(&mut self, first: usize, values: &[u64]) {
        for (k, &v) in values.iter().enumerate() {
            self.put(first + k, v);
        }
    }

    /// [`Self::change`] out of line (for the callers that inline their comparison).
    #[inline(never)]
    fn change_one(&mut self, i: usize, old: u64, v: u64) {
        self.change(i, old, v);
    }

    /// Records word `i` changing from `old` to `v`: staged for the log while the commit is
    /// small enough, else journaled.
    #[inline(always)]
    fn change(&mut self, i: usize, old: u64, v: u64) {
        match self.staged.get_mut(self.nstaged) {
            Some(slot) if !self.spilled => {
                *slot = (i, old, v);
                self.nstaged += 1;
            }
            _ => self.change_journaled(i, old, v),
        }
    }

    /// [`Self::change`] past the log's room (spilling what was staged) or once spilled.
    fn change_journaled(&mut self, i: usize, old: u64, v: u64) {
        if !self.spilled {
            self.spill();
        }
        self.journal_change(i, old, v);
    }

    /// The open commit goes through the journal: the staged changes are journaled first.
    fn spill(&mut self) {
        self.spilled = true;
        for k in 0..self.nstaged {
            let (i, old, v) = self.staged[k];
            self.journal_change(i, old, v);
        }
        self.nstaged = 0;
    }

    /// Adds `delta` to page `p`'s pending checksum change.
    #[inline]
    pub(super) fn add_delta(&mut self, p: u32, delta: u64) {
        match self.pages.last_mut() {
            Some(last) if last.0 == p => last.1 = last.1.wrapping_add(delta),
            _ => match self.pages.iter_mut().find(|e| e.0 == p) {
                Some(e) => e.1 = e.1.wrapping_add(delta),
                None => {
                    if self.pages.push((p, delta)).is_err() {
                        self.stuck = true;
                    }
                }
            },
        }
    }

    /// Journals word `i` changing from `old` to `v` and its page checksum's delta.
    #[inline]
    fn journal_change(&mut self, i: usize, old: u64, v: u64) {
        let delta = mix(v, i).wrapping_sub(mix(old, i));
        self.add_delta((i / PAGE_WORDS) as u32, delta);
        self.journal_word(i, v);
    }

    /// Appends word `i` = `v` to the journal, extending the open extent (also across one
    /// unchanged word, copied from the image) or opening a new one, whose header word is
    /// written when it closes.
    fn journal_word(&mut self, i: usize, v: u64) {
        match self.ext {
            Some((h, at, next)) if i == next || i == next + 1 => {
                if i == next + 1 {
                    let gap = self.words[next];
                    self.jword(gap);
                }
                self.jword(v);
                self.ext = Some((h, at, i + 1));
            }
            _ => {
                self.close_extent();
                let h = self.jlen;
                // The header's place; its word follows once the extent's length is known.
                self.jlen += 1;
                self.jword(v);
                self.ext = Some((h, i, i + 1));
            }
        }
    }

    /// Writes the open extent's header with its final length.
    fn close_extent(&mut self) {
        if let Some((h, at, next)) = self.ext.take() {
            if h < self.layout.journal_words {
                let header = (at as u64) | ((next - at) as u64) << 32;
                self.jsum = self.jsum.wrapping_add(mix(header, h + 2));
                self.store(self.layout.journal + JOURNAL_HEAD + h, header);
            }
        }
    }

    fn jword(&mut self, v: u64) {
        if self.jlen >= self.layout.journal_words {
            self.stuck = true;
            return;
        }
        let at = self.layout.journal + JOURNAL_HEAD + self.jlen;
        self.jsum = self.jsum.wrapping_add(mix(v, self.jlen + 2));
        self.store(at, v);
        self.jlen += 1;
    }

    /// Ends the commit. A few changed words go to the change log as one record (the common
    /// one-frame operation: see the module doc); more, or a log without room, go through the
    /// journal with the changed page checksums and the table checksum, settling the log too.
    /// Returns false if the journal overflowed (nothing was committed; the image keeps the
    /// previous state and every later commit is refused, so the image never mixes two states).
    pub fn commit(&mut self) -> bool {
        if self.stuck {
            return false;
        }
        if !self.spilled {
            if self.nstaged == 0 || self.log_commit() {
                return true;
            }
            self.spill();
        }
        self.journal_commit()
    }

    /// Settles the change log: its records' checksum deltas go into the table through the
    /// journal, and the log starts empty again. Nothing to do without records. Returns false
    /// as [`Self::commit`].
    pub fn settle(&mut self) -> bool {
        if self.log_end == 0 {
            return !self.stuck;
        }
        self.begin();
        self.spilled = true;
        self.commit()
    }

    /// Appends the staged changes to the log as one record and writes them into the image;
    /// false (nothing written) if the log has no room for it.
    fn log_commit(&mut self) -> bool {
        let n = self.nstaged.min(LOG_MAX_WORDS);
        let len = LOG_HEAD + n * LOG_ENTRY;
        if self.log_end + len > LOG_WORDS {
            return false;
        }
        let at = self.layout.log + self.log_end;
        let number = self.log_next;
        let staged = &self.staged[..n];
        // The store count in a local (a register, not reloaded after every store to the
        // image), written back at the end.
        let mut d = self.deaths;
        let words = &mut *self.words;
        // Recovery looks for the next record right after this one. A settle leaves the log's
        // old words in place, so that word may be a stale entry holding any image value,
        // also the next record's number: cleared before the commit point, it never reads as
        // a record (see the module doc).
        if self.log_end + len < LOG_WORDS && d.store() {
            words[at + len] = 0;
        }
        // The record's words, bounds-checked once: [number, n, entries.., checksum].
        let Some((sum, body)) = words
            .get_mut(at..at + len)
            .and_then(<[u64]>::split_last_mut)
        else {
            return false;
        };
        let (head, entries) = body.split_at_mut(2);
        if d.store() {
            head[1] = n as u64;
        }
        let mut h = chain(chain(0, number), n as u64);
        for (e, &(i, old, v)) in entries.chunks_exact_mut(LOG_ENTRY).zip(staged) {
            h = chain(chain(chain(h, i as u64), old), v);
            for (slot, w) in e.iter_mut().zip([i as u64, old, v]) {
                if d.store() {
                    *slot = w;
                }
            }
        }
        if d.store() {
            *sum = mix(h, len);
        }
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        // The commit point.
        self.commit_at = Some(d.stores);
        if d.store() {
            head[0] = number;
        }
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        for &(i, _, v) in staged {
            // `put` took only data words.
            if d.store() {
                words[i] = v;
            }
        }
        self.deaths = d;
        self.log_end += len;
        self.log_next = number.wrapping_add(1);
        true
    }

    /// Ends the commit through the journal: settles the log's records (their checksum deltas
    /// and `LOG_DONE`), journals the changed page checksums and the table checksum, writes the
    /// commit word, applies, clears.
    fn journal_commit(&mut self) -> bool {
        if self.log_end > 0 {
            self.log_deltas();
            self.put(hdr::LOG_DONE, self.log_next.wrapping_sub(1));
        }
        if self.jlen == 0 {
            return true;
        }
        let l = self.layout;
        let seq = self.words[hdr::SEQ].wrapping_add(1);
        // The sequence word is data too (page 0).
        self.put(hdr::SEQ, seq);
        let mut table_delta = 0u64;
        // Usually found in page order already (header, tables, bitmap).
        if !self.pages.is_sorted_by_key(|e| e.0) {
            self.pages.sort_unstable_by_key(|e| e.0);
        }
        for k in 0..self.pages.len() {
            let (p, d) = self.pages[k];
            let at = l.sums + p as usize;
            let old = self.words[at];
            let new = old.wrapping_add(d);
            table_delta = table_delta.wrapping_add(mix(new, at).wrapping_sub(mix(old, at)));
            self.journal_word(at, new);
        }
        let t = l.sums + l.pages();
        let table = self.words[t].wrapping_add(table_delta);
        self.journal_word(t, table);
        self.close_extent();
        if self.stuck {
            return false;
        }
        let j = l.journal;
        let chk = mix(seq, 0)
            .wrapping_add(mix(self.jlen as u64, 1))
            .wrapping_add(self.jsum);
        self.store(j + 1, self.jlen as u64);
        self.store(j + 2, chk);
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        // The commit point.
        self.commit_at = Some(self.deaths.stores);
        self.store(j, seq);
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        self.apply(self.jlen);
        // `LOG_DONE` now names the last record: the log starts over.
        self.log_end = 0;
        true
    }

    /// Whether a commit ever failed for lack of journal room.
    #[must_use]
    pub fn stuck(&self) -> bool {
        self.stuck
    }
}
