//! Shapes of Hubris's own `.idol` files that the golden interfaces do not
//! spell out: an argument written as a RON map (`{ type: .., recv: .. }`),
//! `description:` as the other name of `doc:`, and every `recv:` form on
//! an ok value. Each parses and validates to the meaning it has in Hubris.

use std::path::Path;

use idol::syntax::{parse, Encoding, ErrorKind, Recv, Reply};

#[test]
fn hubris_forms_parse_to_their_meaning() {
    let text = r#"
        Interface(
            name: "UserLeds",
            ops: {
                "led_set_state": (
                    description: "Sets LED `index` to `state`.",
                    args: {
                        "index": "usize",
                        "state": {
                          type: "LedState",
                          recv: FromPrimitive("u8"),
                        }
                    },
                    reply: Result(
                        ok: "()",
                        err: CLike("LedError"),
                    ),
                    idempotent: true,
                ),
                "blink_count": (
                    reply: Result(
                        ok: (type: "Count", recv: From("u32", Some("Count::new"))),
                        err: ServerDeath,
                    ),
                    encoding: Hubpack,
                ),
            },
        )
    "#;
    let path = Path::new("idl/user-leds.idol");
    let iface = parse(path, text).expect("parses");
    iface.validate(path).expect("validates");
    let set = iface.ops.get("led_set_state").expect("op");
    assert_eq!(set.doc, "Sets LED `index` to `state`.");
    let state = set.args.get("state").expect("arg");
    assert_eq!(state.ty, "LedState");
    assert_eq!(state.recv, Recv::FromPrimitive("u8".into()));
    assert!(set.idempotent);
    let blink = iface.ops.get("blink_count").expect("op");
    assert_eq!(blink.encoding, Encoding::Hubpack);
    match &blink.reply {
        Reply::Result {
            ok,
            err: ErrorKind::ServerDeath,
        } => {
            assert_eq!(ok.ty, "Count");
            assert_eq!(ok.recv, Recv::From("u32".into(), Some("Count::new".into())));
        }
        other => panic!("{other:?}"),
    }
}
