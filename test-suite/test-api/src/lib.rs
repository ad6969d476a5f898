//! The private protocols of the in-QEMU test image.
//!
//! `runner` (the test image's supervisor) hands out case numbers and
//! reports results; `suite` runs the cases; `assist` and `peer` (two
//! instances of one crate) misbehave on request so the suite can watch the
//! kernel deal with it. Messages are little-endian words.

#![no_std]

/// Operations the runner serves (suite → runner).
pub mod runner {
    /// `[case_count: u32]` → `[next_case: u32]` (`DONE` when finished).
    pub const NEXT_CASE: u16 = 1;
    /// `[case: u32, name bytes…]` → `[]`: a case starts (arms its timeout).
    pub const START: u16 = 2;
    /// `[case: u32]` → `[]`: the case passed.
    pub const PASSED: u16 = 3;
    /// `[task_index: u32]` → `[kind, a, b]` words of the last fault the
    /// runner saw in that task (kind 0 = none), then forgets it.
    pub const TAKE_FAULT: u16 = 4;
    /// Reply to NEXT_CASE when every case has run.
    pub const DONE: u32 = u32::MAX;
}

/// Operations assist/peer serve.
pub mod assist {
    /// Replies with the message unchanged.
    pub const ECHO: u16 = 1;
    /// `[op: u16 as u32, len: u32]`: replies at once, then SENDs `len`
    /// pattern bytes as operation `op` back to the caller.
    pub const SEND_BACK: u16 = 2;
    /// `[op: u32]`: replies, then SENDs back with one 16-byte read-write
    /// lease of its own memory holding `b"assist-lease-ok!"`.
    pub const SEND_BACK_LEASED: u16 = 3;
    /// `[kind: u32, arg: u64]`: replies, then faults in the way `kind`
    /// names (see [`fault`]).
    pub const FAULT: u16 = 4;
    /// `[index, offset, len]` → `[rc, n, bytes…]`: BORROW_READ from the
    /// caller's lease.
    pub const BORROW_READ: u16 = 5;
    /// `[index, offset, bytes…]` → `[rc, n]`: BORROW_WRITE into the
    /// caller's lease.
    pub const BORROW_WRITE: u16 = 6;
    /// `[index]` → `[rc, attributes, len]`: BORROW_INFO.
    pub const BORROW_INFO: u16 = 7;
    /// Replies 64 bytes whatever the caller can take (faults the server).
    pub const REPLY_TOO_BIG: u16 = 8;
    /// → `[count]`: how many times this has been called since (re)start.
    pub const COUNT: u16 = 9;
    /// `[target_index, op, a, b, c]` (u32 each): replies, then SENDs `op`
    /// with args `[a, b, c]` to task `target` (current generation) with a
    /// 16-byte read-only lease and a 4-byte reply buffer, and ignores the
    /// answer.
    pub const RELAY: u16 = 10;
    /// `[mask: u64]`: replies, then waits in a closed RECV from the kernel
    /// for `mask` and counts the wake-up (read back with NOTES).
    pub const WAIT_NOTE: u16 = 11;
    /// → `[notifications received since start]`.
    pub const NOTES: u16 = 12;
    /// A hand-built SEND, for feeding malformed requests to a server (the
    /// server's REPLY_FAULT then lands on assist, not on the suite).
    /// `[target_index, op, message_len, reply_capacity, lease_count,
    /// lease0, lease1, lease2, payload…]` (u32 words, then up to
    /// [`RAW_PAYLOAD_MAX`] payload bytes; the message is the payload
    /// zero-padded to `message_len`, at most [`RAW_MESSAGE_MAX`]; a lease
    /// word is `attributes | len << 16`, each lease lending the first `len`
    /// bytes of a [`RAW_LEASE_MAX`]-byte buffer holding `i as u8` at offset
    /// `i`). Replies at once, then SENDs to task `target` (current
    /// generation) and keeps the outcome for [`RAW_RESULT`].
    pub const RAW_SEND: u16 = 13;
    /// → `[rc, reply_len, reply bytes (16), lease buffer (16)]` of the last
    /// RAW_SEND since (re)start; `rc` is `u32::MAX` if there was none.
    pub const RAW_RESULT: u16 = 14;
    /// → `[notified, enabled_after, pending_after, enabled_rearmed]` (u32
    /// each): arms PIT channel 0 for a one-shot interrupt on ISA IRQ 0
    /// (bound to this task's `pit` notification), waits for it (bounded by
    /// a 1 s timer), and reports what IRQ_STATUS said after the kernel
    /// delivered it (masked, pending) and after re-enabling. Replies all
    /// zeros in an instance without the binding.
    pub const IRQ_ROUND: u16 = 15;
    /// `[task_index: u32, ms: u32]`: replies at once, then sleeps `ms`
    /// and restarts that task (the manifest must grant the right) — so a
    /// test can have a server restarted while it waits on it.
    pub const RESTART_LATER: u16 = 16;
    /// `[seed: u32]` → `[durable address: u64, RAM address: u64]`: fills
    /// the instance's durable words ([`DURABLE_WORDS`] u32s in
    /// `.durable`) and as many RAM words with [`durable_pattern`]`(seed, i)`.
    pub const DURABLE_FILL: u16 = 17;
    /// `[seed: u32]` → `[durable words matching the pattern, durable words
    /// that are zero, RAM words that are zero]` (u32 each), then the
    /// durable address (u64).
    pub const DURABLE_CHECK: u16 = 18;
    /// `[op: u32]`: replies, then SENDs back with one read-write lease over
    /// the first 16 bytes of its durable words.
    pub const DURABLE_LEND: u16 = 19;
    /// u32 words of durable memory the instance uses (2 KiB, inside a
    /// one-page `memory.durable`).
    pub const DURABLE_WORDS: usize = 512;

    /// Word `i` of DURABLE_FILL's pattern: never zero.
    #[must_use]
    pub const fn durable_pattern(seed: u32, i: usize) -> u32 {
        (seed.wrapping_mul(0x9E37_79B9) ^ (i as u32).wrapping_mul(0x85EB_CA6B)) | 1
    }
    /// `[]` → `[]`: replies, then makes a null syscall and an open RECV
    /// with [`regs::sentinel`](crate::regs::sentinel) values in every register it
    /// does not pass, and answers the message that RECV takes (the
    /// suite's, sent with its own markers) with the registers it saw after
    /// each: 2 × [`regs::WORDS`](crate::regs::WORDS) u64 words, null
    /// syscall first.
    pub const REG_PROBE: u16 = 20;
    /// Replies 4 bytes of which the last 2 lie past the end of this task's
    /// RAM (faults the server). Through RELAY the client's reply buffer
    /// takes 4 bytes, so the kernel's REPLY fast path is the one that
    /// checks the slice.
    pub const REPLY_PAST_RAM_END: u16 = 21;
    /// `[case, split, arg]` (u32 each), sent through RAW_SEND with a
    /// 16-byte reply buffer: answers with the REPLY_RECV attack `case`
    /// ([`reply_recv`](crate::reply_recv)) made as one REPLY_RECV (`split`
    /// 0) or as a REPLY followed by a RECV (`split` 1), and keeps what the
    /// receive took for [`RR_RESULT`].
    pub const REPLY_RECV: u16 = 22;
    /// → `[kind, a, b, c]` (u32 each) of the last REPLY_RECV case's receive:
    /// kind 0 nothing yet; 1 a message (`a` sender, `b` operation, `c`
    /// length); 2 an error code (`a`); 3 notifications (`a` the lowest bit
    /// that fired). First answers, with code [`RR_OWED_CODE`], a caller the
    /// case left waiting (its reply went to another task).
    pub const RR_RESULT: u16 = 23;
    /// The response code of a reply paid by RR_RESULT.
    pub const RR_OWED_CODE: u32 = 7;
    /// Bytes of RAW_SEND's header (eight u32 words).
    pub const RAW_HEADER: usize = 32;
    /// The most payload bytes a RAW_SEND carries.
    pub const RAW_PAYLOAD_MAX: usize = 32;
    /// The longest message a RAW_SEND sends.
    pub const RAW_MESSAGE_MAX: usize = 64;
    /// The longest lease a RAW_SEND lends.
    pub const RAW_LEASE_MAX: usize = 512;
}

/// The attacks of `assist::REPLY_RECV`: how the server's answer differs
/// from a well-formed one (reply `rr-reply` to the caller, then an open
/// receive into its message buffer).
pub mod reply_recv {
    /// Nothing: the well-formed answer.
    pub const PLAIN: u32 = 0;
    /// Sleeps 2 ms first, so a request queues before the receive.
    pub const QUEUED: u32 = 1;
    /// The reply message in kernel memory.
    pub const REPLY_IN_KERNEL: u32 = 2;
    /// A 4-byte reply of which the last 2 lie past the end of the RAM.
    pub const REPLY_PAST_RAM_END: u32 = 3;
    /// The reply message in the server's read-only data (16 bytes).
    pub const REPLY_FROM_RODATA: u32 = 4;
    /// A 64-byte reply (the caller takes 16).
    pub const REPLY_TOO_BIG: u32 = 5;
    /// A response code word above 32 bits.
    pub const REPLY_CODE_TOO_WIDE: u32 = 6;
    /// The reply goes to task id `arg` instead of the caller (who is paid
    /// by RR_RESULT).
    pub const REPLY_TO_OTHER: u32 = 7;
    /// The receive buffer in kernel memory.
    pub const RECV_INTO_KERNEL: u32 = 8;
    /// The receive buffer in the server's read-only data.
    pub const RECV_INTO_RODATA: u32 = 9;
    /// Reserved bits in the receive's sender word.
    pub const RECV_RESERVED_BITS: u32 = 10;
    /// A notification bit posted to itself just before, and in the
    /// receive's mask.
    pub const NOTIFIED: u32 = 11;
    /// A closed receive from task id `arg`.
    pub const CLOSED: u32 = 12;
    /// The response code `arg`, one the kernel reserves for its own answers
    /// (a forged dead code, `IPC_REFUSED`).
    pub const REPLY_KERNEL_CODE: u32 = 13;
}

/// Every general register around one syscall, for the cases that check no
/// register value crosses from one task to another.
pub mod regs {
    /// How many registers [`AllRegs`] holds.
    pub const WORDS: usize = 13;
    // `syscall_all` addresses the fields by these offsets.
    const _: () = assert!(core::mem::size_of::<AllRegs>() == WORDS * 8);
    const _: () = assert!(core::mem::offset_of!(AllRegs, r15) == 96);

    /// The general registers a task controls across a syscall (all but
    /// RSP, and RCX and R11, which SYSCALL itself overwrites), in the
    /// order of [`AllRegs::NAMES`].
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
    #[repr(C)]
    pub struct AllRegs {
        pub rax: u64,
        pub rbx: u64,
        pub rdx: u64,
        pub rsi: u64,
        pub rdi: u64,
        pub rbp: u64,
        pub r8: u64,
        pub r9: u64,
        pub r10: u64,
        pub r12: u64,
        pub r13: u64,
        pub r14: u64,
        pub r15: u64,
    }

    impl AllRegs {
        pub const NAMES: [&'static str; WORDS] = [
            "rax", "rbx", "rdx", "rsi", "rdi", "rbp", "r8", "r9", "r10", "r12", "r13", "r14", "r15",
        ];

        /// Every register set to `value(i)`, `i` its index in [`Self::NAMES`].
        #[must_use]
        pub fn filled(value: fn(usize) -> u64) -> Self {
            Self::from_words(core::array::from_fn(value))
        }

        #[must_use]
        pub fn words(&self) -> [u64; WORDS] {
            [
                self.rax, self.rbx, self.rdx, self.rsi, self.rdi, self.rbp, self.r8, self.r9,
                self.r10, self.r12, self.r13, self.r14, self.r15,
            ]
        }

        #[must_use]
        pub fn from_words(w: [u64; WORDS]) -> Self {
            AllRegs {
                rax: w[0],
                rbx: w[1],
                rdx: w[2],
                rsi: w[3],
                rdi: w[4],
                rbp: w[5],
                r8: w[6],
                r9: w[7],
                r10: w[8],
                r12: w[9],
                r13: w[10],
                r14: w[11],
                r15: w[12],
            }
        }
    }

    /// What the suite puts in register `i` of a marked call.
    #[must_use]
    pub const fn marker(i: usize) -> u64 {
        0x5017_E0DD_0000_0000 | i as u64
    }

    /// What assist puts in register `i` of a marked call.
    #[must_use]
    pub const fn sentinel(i: usize) -> u64 {
        0xA551_5700_0000_0000 | i as u64
    }

    /// Loads every register from `regs` (RAX is the syscall number), makes
    /// the syscall and stores every register back into `regs`: a
    /// [`syscall_probe`] with no user flags set, whose flags and stack
    /// pointer are not asked for.
    pub fn syscall_all(regs: &mut AllRegs) {
        let mut probe = Probe {
            regs: *regs,
            ..Probe::default()
        };
        syscall_probe(&mut probe);
        *regs = probe.regs;
    }

    /// The RFLAGS bits a task sets freely in ring 3 and gets back from
    /// every syscall: CF, PF, AF, ZF, SF, OF, and DF and AC, which the
    /// kernel must clear for itself on entry but never for the task.
    pub const USER_FLAGS: u64 = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x800 | 0x400 | 0x4_0000;
    /// RFLAGS.IF, on whenever a task runs.
    pub const INTERRUPT_FLAG: u64 = 0x200;

    /// One syscall made by [`syscall_probe`]: every register, RFLAGS and
    /// the stack pointer around it.
    #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
    #[repr(C)]
    pub struct Probe {
        /// In: the registers loaded (RAX the syscall number). Out: as
        /// after the syscall.
        pub regs: AllRegs,
        /// In: the [`USER_FLAGS`] bits to set (the others are cleared).
        /// Out: RFLAGS right after the syscall.
        pub flags: u64,
        /// RSP at the SYSCALL instruction.
        pub rsp_before: u64,
        /// RSP right after it.
        pub rsp_after: u64,
    }
    const _: () = assert!(core::mem::offset_of!(Probe, flags) == 104);
    const _: () = assert!(core::mem::offset_of!(Probe, rsp_after) == 120);

    /// [`syscall_all`] with RFLAGS and RSP under control too: sets the
    /// flags `probe.flags` names, makes the syscall, and records RFLAGS
    /// and RSP before anything else runs.
    ///
    /// Hand assembly: RBX and RBP cannot be `asm!` operands, and the point
    /// is to control every register around the instruction. DF and AC are
    /// cleared again before the block ends (compiled code assumes DF
    /// clear), and between setting and clearing them only `mov`, `xchg`,
    /// `push` and `pop` run.
    pub fn syscall_probe(probe: &mut Probe) {
        probe.flags &= USER_FLAGS;
        // Safety: the block saves RBX and RBP (which the compiler owns) and
        // the pointer on the stack and restores them; every other register
        // it changes is declared clobbered, and the syscall's own effects
        // are the caller's business, as for `userlib::sys_raw`. The flags
        // the block sets are cleared before it ends.
        unsafe {
            core::arch::asm!(
                "push rbx",
                "push rbp",
                "push rax",
                "mov [rax + 112], rsp",
                "mov rbx, [rax + 104]",
                "pushfq",
                "and qword ptr [rsp], {not_user}",
                "or [rsp], rbx",
                "popfq",
                "mov rbx, [rax + 8]",
                "mov rdx, [rax + 16]",
                "mov rsi, [rax + 24]",
                "mov rdi, [rax + 32]",
                "mov rbp, [rax + 40]",
                "mov r8, [rax + 48]",
                "mov r9, [rax + 56]",
                "mov r10, [rax + 64]",
                "mov r12, [rax + 72]",
                "mov r13, [rax + 80]",
                "mov r14, [rax + 88]",
                "mov r15, [rax + 96]",
                "mov rax, [rax]",
                "syscall",
                "pushfq",
                "xchg rax, [rsp + 8]",
                "mov [rax + 8], rbx",
                "mov [rax + 16], rdx",
                "mov [rax + 24], rsi",
                "mov [rax + 32], rdi",
                "mov [rax + 40], rbp",
                "mov [rax + 48], r8",
                "mov [rax + 56], r9",
                "mov [rax + 64], r10",
                "mov [rax + 72], r12",
                "mov [rax + 80], r13",
                "mov [rax + 88], r14",
                "mov [rax + 96], r15",
                "pop rbx",
                "mov [rax + 104], rbx",
                "mov [rax + 120], rsp",
                "pushfq",
                "and qword ptr [rsp], {not_df_ac}",
                "popfq",
                "pop rbx",
                "mov [rax], rbx",
                "pop rbp",
                "pop rbx",
                not_user = const !USER_FLAGS as i32,
                not_df_ac = const !(0x400u64 | 0x4_0000) as i32,
                inout("rax") core::ptr::from_mut(probe) => _,
                out("rdx") _,
                out("rsi") _,
                out("rdi") _,
                out("r8") _,
                out("r9") _,
                out("r10") _,
                out("r12") _,
                out("r13") _,
                out("r14") _,
                out("r15") _,
                out("rcx") _,
                out("r11") _,
            );
        }
    }
}

/// Fault kinds for [`assist::FAULT`].
pub mod fault {
    pub const NULL_READ: u32 = 0;
    pub const READ_KERNEL: u32 = 1;
    /// Reads the address given as the argument.
    pub const READ_ADDRESS: u32 = 2;
    pub const WRITE_TEXT: u32 = 3;
    pub const EXEC_DATA: u32 = 4;
    pub const STACK_OVERFLOW: u32 = 5;
    pub const ILLEGAL_INSTRUCTION: u32 = 6;
    pub const DIVIDE_BY_ZERO: u32 = 7;
    pub const PRIVILEGED_INSTRUCTION: u32 = 8;
    pub const IO_PORT: u32 = 9;
    pub const BREAKPOINT: u32 = 10;
    pub const PANIC: u32 = 11;
    pub const BAD_SYSCALL: u32 = 12;
    /// SEND with a message pointer into kernel memory.
    pub const BAD_SLICE: u32 = 13;
    /// SEND with a lease pointing at kernel memory.
    pub const BAD_LEASE: u32 = 14;
    /// SEND with 17 leases.
    pub const TOO_MANY_LEASES: u32 = 15;
    /// IRQ_CONTROL on bits bound to no interrupt.
    pub const UNBOUND_IRQ: u32 = 16;
    /// Writes to a read-only data page.
    pub const WRITE_RODATA: u32 = 17;
    /// `int 2`: a task posing as an NMI.
    pub const SOFTWARE_NMI: u32 = 18;
    /// `int 18`: a task posing as a machine check (which stops the machine).
    pub const SOFTWARE_MACHINE_CHECK: u32 = 19;
    /// SEND (ECHO) to task `arg`, waiting in RECV so the kernel's fast path
    /// sees it, with a message running 8 bytes past the end of the RAM into
    /// the guard page below the durable memory (after one that ends exactly
    /// at the RAM's end, which must go through).
    pub const SEND_ACROSS_RAM_END: u32 = 20;
    /// SEND (ECHO) to task `arg`, waiting in RECV, with the reply buffer in
    /// read-only data.
    pub const SEND_REPLY_INTO_RODATA: u32 = 21;
    /// SEND (ECHO) to task `arg`, waiting in RECV so the kernel's fast path
    /// sees the lease table, lending one buffer of its own and then one at
    /// kernel memory: every entry is checked, not only the first.
    pub const SEND_LEASE_OUTSIDE_TO_WAITING: u32 = 22;
    /// SEND (ECHO) to task `arg`, waiting in RECV, with the lease table
    /// itself in kernel memory.
    pub const SEND_LEASE_TABLE_OUTSIDE_TO_WAITING: u32 = 23;
    /// SET_TIMER with the flag word `arg` (a malformed one: a reserved bit,
    /// or `RELATIVE` without `ARMED`).
    pub const SET_TIMER_FLAGS: u32 = 24;
}

/// Little-endian word helpers.
#[must_use]
pub fn word32(bytes: &[u8], i: usize) -> u32 {
    let mut w = [0u8; 4];
    if let Some(b) = bytes.get(i * 4..i * 4 + 4) {
        w.copy_from_slice(b);
    }
    u32::from_le_bytes(w)
}

#[must_use]
pub fn word64(bytes: &[u8], i: usize) -> u64 {
    let mut w = [0u8; 8];
    if let Some(b) = bytes.get(i * 8..i * 8 + 8) {
        w.copy_from_slice(b);
    }
    u64::from_le_bytes(w)
}

/// Scorekeeping for check tasks that run a list of checks in one image
/// (platform, TDX and hot-plug images, the adversary's attackers): one
/// `test NAME ... ok|FAILED: why` line per check, and at the end the
/// checksummed verdict line of console protocol v1 (the `verdict` crate),
/// by which `cargo xtask test` and `cargo xtask hil` judge the image.
pub mod score {
    use core::fmt::{Arguments, Display};

    use userlib::ulog;
    use verdict::Tally;

    #[derive(Default)]
    pub struct Score {
        tally: Tally,
    }

    impl Score {
        pub fn pass(&mut self, name: &str) {
            let line = self.tally.pass(&name);
            ulog!("{line}");
        }

        pub fn fail(&mut self, name: &str, why: Arguments<'_>) {
            let line = self.tally.fail(&name, &why);
            ulog!("{line}");
        }

        pub fn check(&mut self, name: &str, ok: bool, why: Arguments<'_>) {
            if ok {
                self.pass(name)
            } else {
                self.fail(name, why)
            }
        }

        /// A case whose name is not a plain string.
        pub fn case(&mut self, name: &dyn Display, outcome: Result<(), &dyn Display>) {
            let line = self.tally.case(name, outcome);
            ulog!("{line}");
        }

        #[must_use]
        pub fn passed(&self) -> u64 {
            self.tally.passed()
        }

        #[must_use]
        pub fn failed(&self) -> u64 {
            self.tally.failed()
        }

        /// (passed, failed, crc) for the task that prints the verdict.
        #[must_use]
        pub fn parts(&self) -> (u64, u64, u32) {
            self.tally.parts()
        }

        /// Counts cases another task printed (its [`Score::parts`]).
        pub fn absorb(&mut self, passed: u64, failed: u64, crc: u32) {
            self.tally.absorb(passed, failed, crc);
        }

        /// Prints the verdict line for image `image`: the image's last
        /// word on the console.
        pub fn verdict(&self, image: &str) {
            ulog!("{}", self.tally.verdict(image));
        }
    }

    /// `check!(score, "name", condition, "why {}", args…)`.
    #[macro_export]
    macro_rules! check {
        ($s:expr, $name:expr, $cond:expr, $($why:tt)*) => {
            $s.check($name, $cond, format_args!($($why)*))
        };
    }
}

/// Counting guest instructions under `-icount shift=0`, where QEMU
/// advances the TSC by one per instruction: the TSC's own cost and its
/// ticks per instruction are measured in the same run, and every figure is
/// a median of `SAMPLES` runs.
pub mod measure {
    /// Reads the TSC (serialized by LFENCE).
    #[must_use]
    pub fn tsc() -> u64 {
        let (lo, hi): (u32, u32);
        // Safety: RDTSC is allowed in ring 3 (CR4.TSD is clear) and only
        // reads.
        unsafe {
            core::arch::asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack))
        };
        u64::from(hi) << 32 | u64::from(lo)
    }

    /// The median of `N` runs of `f`.
    pub fn median<const N: usize>(mut f: impl FnMut() -> u64) -> u64 {
        let mut s = [0u64; N];
        for v in s.iter_mut() {
            *v = f();
        }
        s.sort_unstable();
        s[N / 2]
    }

    /// TSC ticks for a loop of exactly `2 * n` instructions.
    fn spin(n: u64) -> u64 {
        let t0 = tsc();
        // Safety: a register-only countdown loop.
        unsafe {
            core::arch::asm!("2:", "dec {0}", "jnz 2b", inout(reg) n => _, options(nomem, nostack))
        };
        tsc() - t0
    }

    /// Converts TSC deltas into instructions.
    #[derive(Copy, Clone, Debug)]
    pub struct Calibration {
        /// Ticks of back-to-back TSC reads.
        pub empty: u64,
        pub ticks_per_1000_insn: u64,
    }

    impl Calibration {
        /// Measures the TSC's overhead and rate with two loop lengths (so
        /// the overhead cancels).
        #[must_use]
        pub fn measure<const N: usize>() -> Self {
            let empty = median::<N>(|| {
                let t0 = tsc();
                tsc() - t0
            });
            let (a, b) = (median::<N>(|| spin(1000)), median::<N>(|| spin(11000)));
            Calibration {
                empty,
                ticks_per_1000_insn: (b - a) / 20,
            }
        }

        /// Instructions in a measured TSC delta.
        #[must_use]
        pub fn instructions(&self, ticks: u64) -> u64 {
            ticks.saturating_sub(self.empty) * 1000 / self.ticks_per_1000_insn.max(1)
        }
    }
}
