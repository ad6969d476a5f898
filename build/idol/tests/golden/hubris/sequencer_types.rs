// Types named by sequencer.idol, for the compile test.

primitive_enum! {
    /// The processor's power state.
    pub enum PowerState {
        A2 = 1,
        A0 = 2,
    }
}

primitive_enum! {
    /// Whether a state change did anything.
    pub enum Transition {
        Changed = 1,
        Unchanged = 2,
    }
}

idol_runtime::clike_error! {
    /// Why a state change failed.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub enum SeqError {
        IllegalTransition = 3,
        ClockConfigFailed = 4,
    }
}
