//! Generates the TdxHost interface's client stub from `idl/tdx-host.idol`.

fn main() -> Result<(), idol::Error> {
    idol::client::build_client_stub("../../idl/tdx-host.idol", "client_stub.rs")
}
