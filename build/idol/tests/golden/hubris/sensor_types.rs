// Types named by sensor.idol, for the compile test.

/// A sensor's index; travels as a `u32`.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, hubpack::SerializedSize,
)]
pub struct SensorId(pub u32);

impl SensorId {
    /// The id with index `raw`.
    pub fn from_raw(raw: u32) -> Self {
        SensorId(raw)
    }
}

impl From<u32> for SensorId {
    fn from(raw: u32) -> Self {
        SensorId(raw)
    }
}

impl From<SensorId> for u32 {
    fn from(id: SensorId) -> u32 {
        id.0
    }
}

/// A value and when it was taken.
#[derive(Copy, Clone, Debug, serde::Serialize, serde::Deserialize, hubpack::SerializedSize)]
pub struct Reading {
    pub value: f32,
    pub timestamp: u64,
}

primitive_enum! {
    /// Why a sensor has no data.
    pub enum NoData {
        DeviceOff = 0,
        DeviceError = 1,
        DeviceTimeout = 2,
    }
}

idol_runtime::clike_error! {
    /// Why a sensor request failed.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub enum SensorError {
        InvalidSensor = 3,
        NoReading = 4,
    }
}
