//! Tests of the syscall register layouts: every argument struct round-trips through
//! `to_regs`/`from_regs`, reads only its own words, and refuses malformed fields with the
//! fault the kernel gives.

use super::Deadline;
use super::{
    ArgRegs, BorrowArgs, BorrowInfoArgs, BytesArgs, IrqControlArgs, IrqStatus, IrqStatusArgs,
    LeaseInfo, PostArgs, Received, RecvArgs, RefreshTaskIdArgs, RefreshedTaskId, ReplyArgs,
    ReplyFaultArgs, ReplyRecvArgs, Response, SeamcallArgs, SeamcallResult, SendArgs, SetTimerArgs,
    TimerState, USlice,
};
use crate::{ReplyFaultReason, TaskId, UsageError, RECV_CLOSED};

/// `regs` with every word from `first` on replaced by a garbage value.
fn with_garbage_from(mut regs: ArgRegs, first: usize) -> ArgRegs {
    for (i, w) in regs.iter_mut().enumerate().skip(first) {
        *w = 0xDEAD_BEEF_0000_0000 | i as u64;
    }
    regs
}

/// The stubs that pass only `WORDS` argument words rely on both halves:
/// `to_regs` puts nothing past them, and `from_regs` reads nothing
/// past them (whatever the caller left in those registers).
#[test]
fn words_past_a_syscalls_own_are_unused() {
    let refresh = RefreshTaskIdArgs { index: 3 };
    let regs = refresh.to_regs();
    assert!(regs[RefreshTaskIdArgs::WORDS..].iter().all(|&w| w == 0));
    assert_eq!(
        RefreshTaskIdArgs::from_regs(&with_garbage_from(regs, RefreshTaskIdArgs::WORDS)),
        refresh
    );
    for sender in [None, Some(TaskId(5)), Some(TaskId::KERNEL)] {
        let recv = RecvArgs {
            buffer: USlice::new(0x4000, 64),
            notification_mask: 0b101,
            sender,
        };
        let regs = recv.to_regs();
        assert!(regs[RecvArgs::WORDS..].iter().all(|&w| w == 0));
        assert_eq!(
            RecvArgs::from_regs(&with_garbage_from(regs, RecvArgs::WORDS)),
            Ok(recv)
        );
    }
    let reply = ReplyArgs {
        peer: TaskId(9),
        code: 77,
        message: USlice::new(0x5000, 8),
    };
    let regs = reply.to_regs();
    assert!(regs[ReplyArgs::WORDS..].iter().all(|&w| w == 0));
    assert_eq!(
        ReplyArgs::from_regs(&with_garbage_from(regs, ReplyArgs::WORDS)),
        Ok(reply)
    );
}

#[test]
fn arguments_round_trip_through_registers() {
    let send = SendArgs {
        target: TaskId(0x0003_0002),
        operation: 7,
        message: USlice::new(0x1000, 16),
        reply: USlice::new(0x2000, 32),
        leases: USlice::new(0x3000, 2),
    };
    assert_eq!(SendArgs::from_regs(&send.to_regs()), send);
    for sender in [None, Some(TaskId(5)), Some(TaskId::KERNEL)] {
        let recv = RecvArgs {
            buffer: USlice::new(0x4000, 64),
            notification_mask: 0b101,
            sender,
        };
        assert_eq!(RecvArgs::from_regs(&recv.to_regs()), Ok(recv));
    }
    let reply = ReplyArgs {
        peer: TaskId(9),
        code: crate::FIRST_RESERVED_CODE - 1,
        message: USlice::new(0x5000, 8),
    };
    assert_eq!(ReplyArgs::from_regs(&reply.to_regs()), Ok(reply));
    for sender in [None, Some(TaskId(5)), Some(TaskId::KERNEL)] {
        let both = ReplyRecvArgs {
            reply,
            recv: RecvArgs {
                buffer: USlice::new(0x4000, 64),
                notification_mask: 0b101,
                sender,
            },
        };
        let regs = both.to_regs();
        assert_eq!(ReplyRecvArgs::reply_from_regs(&regs), Ok(both.reply));
        assert_eq!(ReplyRecvArgs::recv_from_regs(&regs), Ok(both.recv));
        // A task blocked in REPLY_RECV is read back as one blocked in
        // RECV: the RECV words sit where RECV's do.
        assert_eq!(RecvArgs::from_regs(&regs), Ok(both.recv));
    }
    let fault = ReplyFaultArgs {
        peer: TaskId(9),
        reason: ReplyFaultReason::BadLeases,
    };
    assert_eq!(ReplyFaultArgs::from_regs(&fault.to_regs()), Ok(fault));
    let borrow = BorrowArgs {
        lender: TaskId(4),
        index: 1,
        offset: 12,
        buffer: USlice::new(0x6000, 100),
    };
    assert_eq!(BorrowArgs::from_regs(&borrow.to_regs()), borrow);
    let info = BorrowInfoArgs {
        lender: TaskId(4),
        index: 3,
    };
    assert_eq!(BorrowInfoArgs::from_regs(&info.to_regs()), info);
    let post = PostArgs {
        target: TaskId(1),
        bits: 1 << 40,
    };
    assert_eq!(PostArgs::from_regs(&post.to_regs()), post);
    for deadline in [
        None,
        Some(Deadline::At(0)),
        Some(Deadline::At(u64::MAX)),
        Some(Deadline::After(0)),
        Some(Deadline::After(u64::MAX)),
    ] {
        let t = SetTimerArgs {
            deadline,
            notifications: 2,
        };
        assert_eq!(SetTimerArgs::from_regs(&t.to_regs()), Ok(t));
    }
    for enable in [false, true] {
        let c = IrqControlArgs { mask: 8, enable };
        assert_eq!(IrqControlArgs::from_regs(&c.to_regs()), Ok(c));
    }
    let s = IrqStatusArgs { mask: 8 };
    assert_eq!(IrqStatusArgs::from_regs(&s.to_regs()), s);
    let r = RefreshTaskIdArgs { index: 3 };
    assert_eq!(RefreshTaskIdArgs::from_regs(&r.to_regs()), r);
    let b = BytesArgs {
        bytes: USlice::new(0x7000, 5),
    };
    assert_eq!(BytesArgs::from_regs(&b.to_regs()), b);
    let seam = SeamcallArgs {
        cpu: crate::seamcall::ANY_CPU,
        leaf: 33,
        inputs: [1, 2, 3, 4, 5, 6],
    };
    assert_eq!(SeamcallArgs::from_regs(&seam.to_regs()), seam);
}

#[test]
fn results_round_trip_through_registers() {
    let r = Response {
        code: 0xFFFF_0003,
        value: 12,
    };
    assert_eq!(Response::from_regs(r.to_regs()), r);
    let m = Received {
        sender: TaskId(0x0001_0002),
        operation: 3,
        message_len: 40,
        response_capacity: 8,
        lease_count: 2,
    };
    assert_eq!(Received::from_regs(m.to_regs()), Ok(m));
    let n = Received::notification(0b110);
    assert_eq!(Received::from_regs(n.to_regs()), Ok(n));
    let info = LeaseInfo {
        attributes: 3,
        len: 4096,
    };
    assert_eq!(LeaseInfo::from_regs(info.to_regs()), Ok(info));
    for deadline in [None, Some(77)] {
        let t = TimerState {
            now: 50,
            deadline,
            notifications: 4,
        };
        assert_eq!(TimerState::from_regs(t.to_regs()), t);
    }
    let s = IrqStatus {
        enabled: 1,
        pending: 2,
    };
    assert_eq!(IrqStatus::from_regs(s.to_regs()), s);
    let id = RefreshedTaskId {
        id: TaskId(0x0005_0001),
    };
    assert_eq!(RefreshedTaskId::from_regs(id.to_regs()), id);
    let seam = SeamcallResult {
        outcome: crate::seamcall::RETURNED,
        words: [1, 2, 3, 4, 5, 6, 7],
    };
    assert_eq!(SeamcallResult::from_regs(seam.to_regs()), seam);
}

#[test]
fn an_error_code_is_not_mistaken_for_a_result() {
    let dead = Response::code(crate::dead_response_code(crate::Generation(2))).to_regs();
    assert_eq!(
        Received::from_regs([dead[0], dead[1], 0, 0, 0, 0]),
        Err(0xFFFF_0002)
    );
    assert_eq!(
        LeaseInfo::from_regs([u64::from(crate::DEFECT), 0, 0]),
        Err(crate::DEFECT)
    );
}

#[test]
fn malformed_arguments_are_usage_errors() {
    let regs = |i: usize, v: u64| -> ArgRegs {
        let mut r = [0; 8];
        r[i] = v;
        r
    };
    // A sender word without RECV_CLOSED, or with bits above the id.
    assert_eq!(
        RecvArgs::from_regs(&regs(3, 5)),
        Err(UsageError::ReservedBits)
    );
    assert_eq!(
        RecvArgs::from_regs(&regs(3, RECV_CLOSED | 1 << 32)),
        Err(UsageError::ReservedBits)
    );
    assert_eq!(
        ReplyArgs::from_regs(&regs(1, 1 << 32)),
        Err(UsageError::ReservedBits)
    );
    // The kernel's own answers cannot be forged by a server: a dead code, IPC_REFUSED,
    // and the first reserved code; the code below them still goes through.
    for code in [
        crate::dead_response_code(crate::Generation(7)),
        crate::IPC_REFUSED,
        crate::FIRST_RESERVED_CODE,
        u32::MAX,
    ] {
        assert_eq!(
            ReplyArgs::from_regs(&regs(1, u64::from(code))),
            Err(UsageError::ReservedCode),
            "{code:#x}"
        );
        assert_eq!(
            ReplyRecvArgs::reply_from_regs(&regs(5, u64::from(code))),
            Err(UsageError::ReservedCode),
            "{code:#x}"
        );
    }
    let below = ReplyArgs::from_regs(&regs(1, u64::from(crate::FIRST_RESERVED_CODE - 1)));
    assert_eq!(below.map(|a| a.code), Ok(crate::FIRST_RESERVED_CODE - 1));
    // Each half of REPLY_RECV checks its own words only.
    assert_eq!(
        ReplyRecvArgs::reply_from_regs(&regs(5, 1 << 32)),
        Err(UsageError::ReservedBits)
    );
    assert!(ReplyRecvArgs::recv_from_regs(&regs(5, 1 << 32)).is_ok());
    assert_eq!(
        ReplyRecvArgs::recv_from_regs(&regs(3, 5)),
        Err(UsageError::ReservedBits)
    );
    assert!(ReplyRecvArgs::reply_from_regs(&regs(3, 5)).is_ok());
    assert_eq!(
        ReplyFaultArgs::from_regs(&regs(1, 0)),
        Err(UsageError::ReservedBits)
    );
    assert_eq!(
        ReplyFaultArgs::from_regs(&regs(1, 1 << 32 | 1)),
        Err(UsageError::ReservedBits)
    );
    assert_eq!(
        IrqControlArgs::from_regs(&regs(1, 2)),
        Err(UsageError::ReservedBits)
    );
}

#[test]
fn a_set_timer_with_the_armed_word_clear_ignores_the_deadline() {
    let mut r = [0; 8];
    r[1] = 1234;
    r[2] = 7;
    assert_eq!(SetTimerArgs::from_regs(&r).map(|a| a.deadline), Ok(None));
}

/// The flag word is exact: the absolute form every existing caller
/// encodes (`ARMED` = 1) still decodes as before, and any other bit,
/// or `RELATIVE` on a disarm, is the usage fault other reserved bits
/// get.
#[test]
fn a_set_timer_flag_word_with_an_unknown_bit_is_a_usage_error() {
    use crate::set_timer::{ARMED, RELATIVE};
    let flags = |f: u64| SetTimerArgs::from_regs(&[f, 40, 2, 0, 0, 0, 0, 0]);
    assert_eq!(flags(1).map(|a| a.deadline), Ok(Some(Deadline::At(40))));
    assert_eq!(
        flags(ARMED | RELATIVE).map(|a| a.deadline),
        Ok(Some(Deadline::After(40)))
    );
    for bad in [RELATIVE, 1 << 2, ARMED | 1 << 2, ARMED | 1 << 63, u64::MAX] {
        assert_eq!(flags(bad), Err(UsageError::ReservedBits), "{bad:#x}");
    }
}

/// A relative deadline is the clock plus the count, and a count that
/// would run past the end of time saturates instead of wrapping into
/// the past (where it would fire at once).
#[test]
fn a_relative_deadline_saturates_and_never_wraps() {
    assert_eq!(Deadline::After(0).resolve(500), 500);
    assert_eq!(
        Deadline::After(3).resolve(500),
        Deadline::At(503).resolve(500)
    );
    assert_eq!(Deadline::After(u64::MAX).resolve(500), u64::MAX);
    assert_eq!(Deadline::After(u64::MAX - 499).resolve(500), u64::MAX);
    assert_eq!(Deadline::After(u64::MAX - 500).resolve(500), u64::MAX);
    assert_eq!(Deadline::After(u64::MAX - 501).resolve(500), u64::MAX - 1);
    assert_eq!(Deadline::At(7).resolve(500), 7);
}
