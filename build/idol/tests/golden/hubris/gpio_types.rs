// Types named by gpio.idol, for the compile test.

primitive_enum! {
    /// A GPIO port.
    pub enum Port {
        A = 0,
        B = 1,
        C = 2,
    }
}

primitive_enum! {
    /// What a pin does.
    pub enum Mode {
        Input = 0,
        Output = 1,
        Alternate = 2,
        Analog = 3,
    }
}

primitive_enum! {
    /// A pin's pull resistor.
    pub enum Pull {
        None = 0,
        Up = 1,
        Down = 2,
    }
}

idol_runtime::clike_error! {
    /// Why a GPIO request failed.
    #[derive(Copy, Clone, Debug, PartialEq, Eq)]
    pub enum GpioError {
        BadPin = 3,
        NotConfigured = 4,
    }
}
