//! Malformed interfaces are refused with a message naming the file, the
//! position and the offending key, plus a did-you-mean where one is close.

use std::path::Path;

use idol::syntax::parse;
use idol::Error;

const FILE: &str = "idl/broken.idol";

/// Parses and validates `text`, returning the error message.
fn refuse(text: &str) -> String {
    let path = Path::new(FILE);
    let result = parse(path, text).and_then(|iface| iface.validate(path));
    match result {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn op(body: &str) -> String {
    format!("Interface(name: \"Demo\", ops: {{ \"ping\": ({body}) }})")
}

#[test]
fn unknown_operation_key_suggests_the_right_one() {
    let msg = refuse(&op("docs: \"x\", reply: Simple(\"u32\")"));
    assert!(msg.starts_with("idl/broken.idol:1:"), "{msg}");
    assert!(msg.contains("unknown key `docs`"), "{msg}");
    assert!(msg.contains("did you mean `doc`?"), "{msg}");
}

#[test]
fn unknown_interface_key_is_refused() {
    let msg = refuse("Interface(name: \"Demo\", version: \"x\", ops: {})");
    assert!(msg.contains("unknown key `version`"), "{msg}");
}

#[test]
fn doc_and_its_other_name_description_may_not_both_be_given() {
    let msg = refuse(&op(
        "doc: \"x\", description: \"y\", reply: Simple(\"u32\")",
    ));
    assert!(msg.contains("duplicate"), "{msg}");
    assert!(msg.contains("doc"), "{msg}");
}

#[test]
fn idempotent_operation_may_not_report_server_death() {
    let msg = refuse(&op(
        "reply: Result(ok: \"u32\", err: ServerDeath), idempotent: true",
    ));
    assert!(msg.contains("operation `ping`"), "{msg}");
    assert!(msg.contains("never reports ServerDeath"), "{msg}");
}

#[test]
fn reply_recv_attributes_are_checked_like_arguments() {
    let msg = refuse(&op(
        "reply: Simple((type: \"Mode\", recv: FromPrimitive(\"f32\"))), idempotent: true",
    ));
    assert!(msg.contains("operation `ping`, reply"), "{msg}");
    assert!(
        msg.contains("FromPrimitive(\"f32\") must name one of"),
        "{msg}"
    );
    let msg = refuse(&op(
        "args: { \"id\": (type: \"SensorId\", recv: From(\"u32\", Some(\"not a path\"))) }, \
         reply: Simple(\"u32\")",
    ));
    assert!(msg.contains("argument `id`"), "{msg}");
    assert!(msg.contains("must name a function path"), "{msg}");
}

#[test]
fn unknown_lease_key_suggests_max_len() {
    let msg = refuse(&op(
        "leases: { \"b\": (type: \"[u8]\", read: true, max_length: Some(4)) }, reply: Simple(\"u32\")",
    ));
    assert!(msg.contains("unknown key `max_length`"), "{msg}");
    assert!(msg.contains("did you mean `max_len`?"), "{msg}");
}

#[test]
fn unknown_argument_key_is_refused() {
    let msg = refuse(&op(
        "args: { \"a\": (type: \"u8\", recieve: FromBytes) }, reply: Simple(\"u32\")",
    ));
    assert!(msg.contains("unknown key `recieve`"), "{msg}");
    assert!(msg.contains("did you mean `recv`?"), "{msg}");
}

#[test]
fn unknown_variant_suggests_the_right_one() {
    let msg = refuse(&op("reply: Result(ok: \"u32\", err: CLik(\"E\"))"));
    assert!(msg.contains("unknown variant `CLik`"), "{msg}");
    assert!(msg.contains("did you mean `CLike`?"), "{msg}");
}

#[test]
fn duplicate_operation_is_refused() {
    let msg = refuse(
        "Interface(name: \"Demo\", ops: {\n  \"ping\": (reply: Simple(\"u32\")),\n  \"ping\": (reply: Simple(\"u8\")),\n})",
    );
    assert!(msg.starts_with("idl/broken.idol:3:"), "{msg}");
    assert!(msg.contains("duplicate key `ping`"), "{msg}");
}

#[test]
fn duplicate_argument_and_field_are_refused() {
    let msg = refuse(&op(
        "args: { \"a\": \"u8\", \"a\": \"u16\" }, reply: Simple(\"u32\")",
    ));
    assert!(msg.contains("duplicate key `a`"), "{msg}");
    let msg = refuse(&op("reply: Simple(\"u32\"), reply: Simple(\"u8\")"));
    assert!(msg.contains("duplicate key `reply`"), "{msg}");
    let msg = refuse(&op(
        "args: { \"a\": (type: \"u8\", type: \"u16\") }, reply: Simple(\"u32\")",
    ));
    assert!(msg.contains("duplicate key `type`"), "{msg}");
}

#[test]
fn meaning_errors_name_the_operation() {
    let msg = refuse(&op(
        "leases: { \"b\": (type: \"[u8]\", read: true, write: true) }, reply: Simple(\"u32\"), idempotent: true",
    ));
    assert!(msg.contains("operation `ping`, lease `b`"), "{msg}");
    assert!(msg.contains("idempotent"), "{msg}");

    let msg = refuse(&op("args: { \"msg\": \"u8\" }, reply: Simple(\"u32\")"));
    assert!(msg.contains("`msg` is used by the generated code"), "{msg}");

    let msg = refuse(&op(
        "leases: { \"REPLY_SIZE\": (type: \"[u8]\", read: true) }, reply: Simple(\"u32\")",
    ));
    assert!(
        msg.contains("`REPLY_SIZE` is used by the generated code"),
        "{msg}"
    );

    // Operations named like the stub's and the server trait's own methods
    // would be duplicate definitions in the generated code.
    for name in [
        "task_id",
        "from_index",
        "notification_mask",
        "handle_notification",
    ] {
        let msg = refuse(&format!(
            "Interface(name: \"Demo\", ops: {{ \"{name}\": (reply: Simple(\"u32\")) }})"
        ));
        assert!(msg.contains(&format!("operation `{name}`")), "{msg}");
        assert!(msg.contains("reserved operation names"), "{msg}");
    }

    let msg = refuse(&op(
        "leases: { \"p\": (type: \"Point\", read: true, max_len: Some(4)) }, reply: Simple(\"u32\")",
    ));
    assert!(
        msg.contains("max_len applies only to `[u8]` leases"),
        "{msg}"
    );

    let msg = refuse(&op(
        "leases: { \"p\": (type: \"[u8]\") }, reply: Simple(\"u32\")",
    ));
    assert!(msg.contains("must allow"), "{msg}");

    let msg = refuse(&op("args: { \"a\": \"Vec<\" }, reply: Simple(\"u32\")"));
    assert!(msg.contains("is not a Rust type"), "{msg}");

    let msg = refuse(&op(
        "args: { \"m\": (type: \"Mode\", recv: FromPrimitive(\"f32\")) }, reply: Simple(\"u32\")",
    ));
    assert!(msg.contains("FromPrimitive(\"f32\")"), "{msg}");

    let msg = refuse(
        "Interface(name: \"Demo\", ops: { \"a\": (reply: Simple(\"u8\"), number: Some(3)), \"b\": (reply: Simple(\"u8\"), number: Some(3)) })",
    );
    assert!(
        msg.contains("number 3 is also given to operation `a`"),
        "{msg}"
    );
}

#[test]
fn errors_are_enums_callers_can_match() {
    let path = Path::new(FILE);
    let err = parse(path, &op("dok: \"\", reply: Simple(\"u8\")")).expect_err("refused");
    assert!(matches!(err, Error::Parse { line: 1, .. }));
}
