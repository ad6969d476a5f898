// Types named by spi.idol, for the compile test.

primitive_enum! {
    /// The chip select line while the controller is locked.
    pub enum CsState {
        Deasserted = 0,
        Asserted = 1,
    }
}

idol_runtime::clike_error! {
    /// Why a transfer failed.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub enum SpiError {
        BadDevice = 3,
        Locked = 4,
        BadTransferSize = 5,
    }
}

/// The controller's counters.
#[derive(Copy, Clone, Debug, serde::Serialize, serde::Deserialize, hubpack::SerializedSize)]
pub struct SpiStatus {
    pub transfers: u32,
    pub errors: u32,
    /// The task index holding the lock, if any.
    pub holder: Option<u16>,
}

/// Why `status` failed, as a Complex error.
#[derive(Copy, Clone, Debug, serde::Serialize, serde::Deserialize, hubpack::SerializedSize)]
pub enum SpiFault {
    /// The controller stopped answering after `transfers` transfers.
    Hung { transfers: u32 },
    /// The server restarted before it answered.
    ServerRestarted,
}

impl idol_runtime::ServerDeath for SpiFault {
    fn server_restarted() -> Self {
        SpiFault::ServerRestarted
    }
}
