//! Generates the Test interface's client stub from `idl/test.idol`.

fn main() -> Result<(), idol::Error> {
    idol::client::build_client_stub("../../idl/test.idol", "client_stub.rs")
}
