//! Generates the Test interface's server support, with the access list from
//! this task's manifest `config.access` (empty outside `cargo xtask`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = build_util::TaskEnv::from_env()?;
    let iface = idol::Interface::load("../../idl/test.idol")?;
    let acl = idol::server::acl_from_task_env(&env, &iface)?;
    idol::server::build_server_support("../../idl/test.idol", "server_stub.rs", &acl)?;
    Ok(())
}
