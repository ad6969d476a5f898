//! Access lists come from the server's manifest config, resolved by name,
//! with did-you-mean errors for unknown operations and tasks.

use build_util::TaskEnv;
use idol::server::{acl_from_task_env, Rule};
use idol::syntax::parse;

fn iface() -> idol::Interface {
    parse(
        std::path::Path::new("demo.idol"),
        "Interface(name: \"Demo\", ops: { \"reset\": (reply: Simple(\"u8\")), \"status\": (reply: Simple(\"u8\")) })",
    )
    .expect("parses")
}

fn env(access: serde_json::Value) -> TaskEnv {
    TaskEnv {
        name: "demo-server".into(),
        tasks: vec!["jefe".into(), "demo-server".into(), "client".into()],
        config: serde_json::json!({ "access": access, "unrelated": 3 }),
        ..TaskEnv::default()
    }
}

#[test]
fn names_resolve_to_indices() {
    let acl = acl_from_task_env(
        &env(serde_json::json!({ "reset": ["jefe", "client"], "status": "any" })),
        &iface(),
    )
    .expect("resolves");
    assert_eq!(
        acl.rule("reset"),
        Rule::Only(vec![("jefe".into(), 0), ("client".into(), 2)])
    );
    assert_eq!(acl.rule("status"), Rule::Any);
}

#[test]
fn unlisted_operations_and_empty_environments_are_open() {
    let acl = acl_from_task_env(&TaskEnv::default(), &iface()).expect("empty env");
    assert_eq!(acl.rule("reset"), Rule::Any);
    let acl = acl_from_task_env(&env(serde_json::json!({ "reset": [] })), &iface()).expect("ok");
    assert_eq!(acl.rule("status"), Rule::Any);
    assert_eq!(acl.rule("reset"), Rule::Only(vec![]));
}

#[test]
fn unknown_task_is_an_error_with_a_suggestion() {
    let err = acl_from_task_env(&env(serde_json::json!({ "reset": ["jeffe"] })), &iface())
        .expect_err("unknown task");
    let msg = err.to_string();
    assert!(msg.contains("task `demo-server`"), "{msg}");
    assert!(
        msg.contains("no task named `jeffe`; did you mean `jefe`?"),
        "{msg}"
    );
}

#[test]
fn unknown_operation_is_an_error_with_a_suggestion() {
    let err = acl_from_task_env(&env(serde_json::json!({ "rest": ["jefe"] })), &iface())
        .expect_err("unknown op");
    assert!(
        err.to_string()
            .contains("no operation `rest`; did you mean `reset`?"),
        "{err}"
    );
}

#[test]
fn malformed_rules_are_errors() {
    for bad in [
        serde_json::json!({ "reset": "all" }),
        serde_json::json!({ "reset": [1] }),
        serde_json::json!(["reset"]),
    ] {
        assert!(
            acl_from_task_env(&env(bad.clone()), &iface()).is_err(),
            "{bad}"
        );
    }
}
