//! The TD table alone: the KeyID pool, page states and the ledger word round trip.

extern crate std;

use super::{PageKind, TdError, TdState, TdTable, MAX_TDS, TABLE_WORDS};
use crate::frames::Owner;

const VMM: Owner = Owner(3 | 1 << 16);

#[test]
fn keyids_come_from_the_private_range_without_the_global_one_and_retired_ones_never_return() {
    let mut t = TdTable::default();
    t.set_keyids(32, 35);
    assert_eq!(t.keyid_counts().free, 3);
    let a = t.create(VMM, 0x1000).unwrap();
    let b = t.create(VMM, 0x2000).unwrap();
    assert_eq!(t.td(a).unwrap().hkid, 33);
    assert_eq!(t.td(b).unwrap().hkid, 34);
    assert_eq!(t.td(a).unwrap().state, TdState::Created);
    t.remove(a, true);
    let c = t.create(VMM, 0x3000).unwrap();
    assert_eq!(t.td(c).unwrap().hkid, 35);
    assert_eq!(t.create(VMM, 0x4000), Err(TdError::NoKeyId));
    t.remove(b, false);
    let d = t.create(VMM, 0x5000).unwrap();
    assert_eq!(t.td(d).unwrap().hkid, 34);
    let n = t.keyid_counts();
    assert_eq!((n.free, n.in_use, n.retired), (0, 2, 1));
    assert_eq!(t.keyids_of(3), 2);
}

#[test]
fn page_in_td_covers_tdrs_and_pages_of_every_size() {
    let mut t = TdTable::default();
    t.set_keyids(32, 40);
    let s = t.create(VMM, 0x10_0000).unwrap();
    t.add_page(s, 0x20_0000, PageKind::Private2M).unwrap();
    t.add_page(s, 0x50_0000, PageKind::Tdcs).unwrap();
    assert!(t.page_in_td(0x10_0000, 4096));
    assert!(t.page_in_td(0x3F_F000, 4096));
    assert!(t.page_in_td(0x0, 1 << 30));
    assert!(!t.page_in_td(0x40_0000, 4096));
    assert_eq!(t.frames_in_tds(), 1 + 512 + 1);
    assert_eq!(t.at(0x50_0000), Some((s, Some(PageKind::Tdcs))));
    assert_eq!(t.at(0x10_0000), Some((s, None)));
    t.remove(s, false);
    assert!(!t.page_in_td(0x0, 1 << 30));
    assert_eq!(t.frames_in_tds(), 0);
}

#[test]
fn the_table_survives_its_ledger_words() {
    let mut t = TdTable::default();
    t.set_keyids(32, 63);
    for i in 0..MAX_TDS as u64 {
        let s = t
            .create(Owner(7 | (i as u32) << 16), (i + 1) << 20)
            .unwrap();
        let td = t.td_mut(s).unwrap();
        td.state = TdState::Runnable;
        td.nvcpus = 2;
        td.vcpus[1].tdvpr = (i + 100) << 20;
        td.vcpus[1].cpu_plus_one = 4;
        td.vcpus[1].tdcx = 5;
        td.keyed = 0b11;
        t.add_page(s, (i + 200) << 21, PageKind::Private2M).unwrap();
    }
    t.remove(3, true);
    let words: std::vec::Vec<u64> = (0..TABLE_WORDS).map(|i| t.word(i)).collect();
    let back = TdTable::from_words(|i| words[i]).unwrap();
    let again: std::vec::Vec<u64> = (0..TABLE_WORDS).map(|i| back.word(i)).collect();
    assert_eq!(words, again);
    assert_eq!(back.keyid_counts(), t.keyid_counts());
    assert_eq!(back.td(5), t.td(5));
    // A page naming an empty slot, or an unknown kind, is malformed.
    let mut bad = words.clone();
    bad[TABLE_WORDS - 1] = 0x1234_5000 | 1 | 3 << 4;
    assert!(TdTable::from_words(|i| bad[i]).is_none());
    let mut bad = words;
    bad[4] = (bad[4] & !0xF) | 9;
    assert!(TdTable::from_words(|i| bad[i]).is_none());
}

/// `no_tds` (a kept count, asked by every free) agrees with the slots themselves after
/// creates, removals (also of an empty slot), a full table and a round trip through the
/// ledger words.
#[test]
fn no_tds_follows_the_slots() {
    fn walk(t: &TdTable) -> bool {
        (0..MAX_TDS).all(|s| t.td(s).is_none())
    }
    let mut t = TdTable::default();
    t.set_keyids(32, 63);
    assert!(t.no_tds() && walk(&t));
    let a = t.create(VMM, 1 << 20).unwrap();
    assert!(!t.no_tds() && !walk(&t));
    t.remove(a, false);
    assert!(t.no_tds() && walk(&t));
    // Removing an empty slot changes nothing.
    t.remove(a, false);
    assert!(t.no_tds() && walk(&t));
    for i in 0..MAX_TDS as u64 {
        t.create(VMM, (i + 1) << 20).unwrap();
    }
    assert_eq!(t.create(VMM, 99 << 20), Err(TdError::TableFull));
    for s in 0..MAX_TDS {
        let words: std::vec::Vec<u64> = (0..TABLE_WORDS).map(|i| t.word(i)).collect();
        let back = TdTable::from_words(|i| words[i]).unwrap();
        assert!(!t.no_tds() && !back.no_tds() && !walk(&back));
        t.remove(s, false);
    }
    assert!(t.no_tds() && walk(&t));
    let words: std::vec::Vec<u64> = (0..TABLE_WORDS).map(|i| t.word(i)).collect();
    assert!(TdTable::from_words(|i| words[i]).unwrap().no_tds());
}
