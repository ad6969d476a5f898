//! Tests of manifest parsing and its checks: what each check refuses (typos, slots, edges,
//! rights, TDX numbers, kill and supervisor rules), and that every manifest in the
//! repository still loads.

use std::path::Path;

use super::parse;

#[test]
fn chaos_settings_are_checked() {
    let with = |c: &str| format!("{GOOD}\n[kernel.chaos]\n{c}\n");
    let m = parse(
        &with("task = \"pong\"\nseed = 7\nkills = 200"),
        Path::new("a"),
    )
    .unwrap();
    let c = m.kernel.chaos.unwrap();
    assert_eq!((c.seed, c.kills, c.every, c.after), (7, 200, 50, 0));
    for (c, want) in [
        (
            "task = \"pnog\"\nseed = 1\nkills = 1",
            "kernel.chaos.task names `pnog`, which is not a task (did you mean `pong`?)",
        ),
        ("task = \"jefe\"\nseed = 1\nkills = 1", "is the supervisor"),
        (
            "task = \"pong\"\nseed = 1\nkills = 0",
            "kernel.chaos.kills = 0 is out of range",
        ),
        (
            "task = \"pong\"\nseed = 1\nkills = 1\nevery = 0",
            "kernel.chaos.every = 0",
        ),
        (
            "task = \"pong\"\nseed = 1\nkils = 1",
            "did you mean `kills`",
        ),
    ] {
        let e = err(&with(c));
        assert!(e.contains(want), "{c}: {e}");
    }
}

#[test]
fn kill_rules_need_exactly_one_action() {
    let with = |f: &str| format!("{GOOD}\n[kernel.tdx]\nfaults = [{f}]\n");
    let ok = with("{ leaf = \"TDH.SYS.KEY.CONFIG\", on-call = 2, kill = \"after\" }");
    let m = parse(&ok, Path::new("a")).unwrap();
    let rules = m.kernel.tdx.unwrap().resolve().unwrap().faults;
    assert_eq!(rules[0].kill, Some(build_kconfig::KillWhen::After));
    assert_eq!(rules[0].on_call, Some(2));
    for (f, want) in [
        (
            "{ leaf = \"TDH.SYS.INIT\", kill = \"before\", status = \"TDX_SYS_BUSY\" }",
            "`status` and `kill` together",
        ),
        ("{ leaf = \"TDH.SYS.INIT\" }", "needs `status = \"NAME\"`"),
        ("{ leaf = \"TDH.SYS.INIT\", kill = \"later\" }", "later"),
    ] {
        let e = err(&with(f));
        assert!(e.contains(want), "{f}: {e}");
    }
}

#[test]
fn a_bad_durable_size_is_refused_clearly() {
    let with = |d: &str| {
        GOOD.replace(
            "priority = 1\nmemory = { text = 0x10000, ram = 0x4000 }",
            &format!("priority = 1\nmemory = {{ text = 0x10000, ram = 0x4000, durable = {d} }}"),
        )
    };
    let m = parse(&with("0x2000"), Path::new("app.toml")).unwrap();
    assert_eq!(m.parsed_tasks[2].1.memory.durable, Some(0x2000));
    for (d, want) in [
        ("0", "memory.durable = 0; leave the key out"),
        (
            "0x1800",
            "memory.durable = 0x1800 is not a multiple of the page size 0x1000",
        ),
        (
            "0x8000000",
            "memory.durable = 0x8000000 is larger than the limit 0x4000000 (64 MiB)",
        ),
        ("-1", "durable"),
    ] {
        let e = err(&with(d));
        assert!(e.contains(want), "{d}: {e}");
        assert!(e.contains("pong") || d == "-1", "{d}: names the task: {e}");
    }
    let e = err(&GOOD.replace(
        "memory = { text = 0x10000, ram = 0x4000 }\nrights",
        "memory = { text = 0x10000, ram = 0x4000, durable = 0x1000 }\nrights",
    ));
    assert!(
        e.contains("task `jefe`: memory.durable is not allowed on the supervisor"),
        "{e}"
    );
    let e = err(&with("0x1000").replace("durable = 0x1000", "durabel = 0x1000"));
    assert!(e.contains("did you mean `durable`"), "{e}");
}

const GOOD: &str = r#"
name = "t"
[tasks.jefe]
crate = "task-jefe"
priority = 0
memory = { text = 0x10000, ram = 0x4000 }
rights = { restart = ["*"] }
[tasks.ping]
crate = "task-ping"
priority = 2
memory = { text = 0x10000, ram = 0x4000 }
task-slots = ["pong"]
[tasks.pong]
crate = "task-pong"
priority = 1
memory = { text = 0x10000, ram = 0x4000 }
[tasks.idle]
crate = "task-idle"
priority = 9
memory = { text = 0x1000, ram = 0x1000 }
"#;

fn err(text: &str) -> String {
    format!("{:#}", parse(text, Path::new("app.toml")).unwrap_err())
}

#[test]
fn a_good_manifest_parses_in_order() {
    let m = parse(GOOD, Path::new("app.toml")).unwrap();
    let names: Vec<_> = m.parsed_tasks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["jefe", "ping", "pong", "idle"]);
}

#[test]
fn a_typo_gets_did_you_mean() {
    let e = err(&GOOD.replace("priority = 2", "priorty = 2"));
    assert!(e.contains("unknown field `priorty`"), "{e}");
    assert!(e.contains("did you mean `priority`"), "{e}");
    assert!(e.contains("[tasks.ping]"), "{e}");
    let e = err(&format!("nmae = \"x\"\n{GOOD}"));
    assert!(e.contains("did you mean `name`"), "{e}");
}

#[test]
fn a_downhill_slot_is_refused() {
    let e = err(&GOOD.replace("task-slots = [\"pong\"]", "").replace(
        "[tasks.pong]\ncrate = \"task-pong\"\npriority = 1\n",
        "[tasks.pong]\ncrate = \"task-pong\"\npriority = 1\ntask-slots = [\"ping\"]\n",
    ));
    assert!(e.contains("must go uphill"), "{e}");
}

#[test]
fn a_downhill_slot_must_be_declared_as_one() {
    let text = GOOD.replace(
        "[tasks.pong]\ncrate = \"task-pong\"\npriority = 1\n",
        "[tasks.pong]\ncrate = \"task-pong\"\npriority = 1\ndownhill-slots = [\"ping\"]\n",
    );
    let m = parse(&text, Path::new("app.toml")).unwrap();
    let pong = &m.parsed_tasks[2].1;
    assert_eq!(pong.slots(), [("ping".to_string(), "ping".to_string())]);
    let e = err(&GOOD.replace("task-slots = [\"pong\"]", "downhill-slots = [\"pong\"]"));
    assert!(
        e.contains("which is more important; list it in `task-slots`"),
        "{e}"
    );
    let e = err(&GOOD.replace("task-slots = [\"pong\"]", "downhill-slots = [\"ping\"]"));
    assert!(e.contains("names the task itself"), "{e}");
}

#[test]
fn post_edges_name_real_tasks_and_notifications() {
    let with_notes = GOOD.replace(
        "[tasks.pong]\ncrate = \"task-pong\"\n",
        "[tasks.pong]\ncrate = \"task-pong\"\nnotifications = [\"wake\", \"timer\"]\n",
    );
    let ok = with_notes.replace(
        "task-slots = [\"pong\"]",
        "task-slots = [\"pong\"]\nposts = { pong = [\"wake\"] }",
    );
    let m = parse(&ok, Path::new("app.toml")).unwrap();
    assert_eq!(m.parsed_tasks[1].1.posts["pong"], ["wake"]);
    let e = err(&with_notes.replace("task-slots = [\"pong\"]", "posts = { pnog = [\"wake\"] }"));
    assert!(
        e.contains("`posts` names `pnog`, which is not a task"),
        "{e}"
    );
    assert!(e.contains("did you mean `pong`"), "{e}");
    let e = err(&with_notes.replace("task-slots = [\"pong\"]", "posts = { pong = [\"wkae\"] }"));
    assert!(
        e.contains("post `wkae` to `pong`, which has no such notification"),
        "{e}"
    );
    assert!(e.contains("did you mean `wake`"), "{e}");
    let e = err(&with_notes.replace("task-slots = [\"pong\"]", "posts = { ping = [] }"));
    assert!(e.contains("names the task itself"), "{e}");
}

#[test]
fn a_right_naming_a_missing_task_is_refused() {
    let e = err(&GOOD.replace("restart = [\"*\"]", "restart = [\"pnog\"]"));
    assert!(e.contains("`pnog`, which is not a task"), "{e}");
    assert!(e.contains("did you mean `pong`"), "{e}");
}

/// Out-of-range `[kernel.tdx]` numbers are errors naming the key (they used to overflow).
#[test]
fn tdx_numbers_are_range_checked() {
    let with = |tdx: &str| format!("{GOOD}\n[kernel.tdx]\n{tdx}\n");
    assert!(parse(&with("keyid-bits = 6"), Path::new("app.toml")).is_ok());
    assert!(parse(&with("keyid-bits = 15\ntdx-keyids = 32752"), Path::new("a")).is_ok());
    let cases = [
        ("keyid-bits = 40", "kernel.tdx.keyid-bits = 40"),
        ("keyid-bits = 16", "kernel.tdx.keyid-bits = 16"),
        (
            "mktme-keyids = 4294967295",
            "kernel.tdx.mktme-keyids = 4294967295",
        ),
        (
            "mktme-keyids = 4294967295\ntdx-keyids = 4294967295\nkeyid-bits = 15",
            "kernel.tdx.mktme-keyids = 4294967295",
        ),
        ("tdx-keyids = 49", "kernel.tdx.tdx-keyids = 49"),
        ("max-tdmrs = 0", "kernel.tdx.max-tdmrs = 0"),
        ("max-tdmrs = 65", "kernel.tdx.max-tdmrs = 65"),
        (
            "max-reserved-per-tdmr = 0",
            "kernel.tdx.max-reserved-per-tdmr = 0",
        ),
        (
            "max-reserved-per-tdmr = 17",
            "kernel.tdx.max-reserved-per-tdmr = 17",
        ),
        ("pamt-entry-size = 0", "kernel.tdx.pamt-entry-size = 0"),
        (
            "pamt-entry-size = 8192",
            "kernel.tdx.pamt-entry-size = 8192",
        ),
        (
            "faults = [{ leaf = \"TDH.SYS.INIT\", status = \"TDX_SYS_BUSY\", on-call = 0 }]",
            "kernel.tdx.faults[0].on-call = 0",
        ),
        (
            "faults = [{ leaf = \"TDH.SYS.INIT\", status = \"TDX_SYS_BUSY\", repeat = 0 }]",
            "kernel.tdx.faults[0].repeat = 0",
        ),
        ("keyid-bits = 300", "keyid-bits"),
        ("mktme-keyids = 4294967296", "mktme-keyids"),
        ("max-tdmrs = -1", "max-tdmrs"),
    ];
    for (tdx, want) in cases {
        let e = err(&with(tdx));
        assert!(e.contains(want), "{tdx}: {e}");
    }
}

/// The two manifests of issue 11 (also run through the `dist` binary in
/// `tests/bad_manifests.rs`) fail at load, before anything is built.
#[test]
fn bad_keyid_fixtures_fail_to_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for (f, key) in [
        ("keyid-bits-40.toml", "kernel.tdx.keyid-bits = 40"),
        (
            "mktme-keyids-u32-max.toml",
            "kernel.tdx.mktme-keyids = 4294967295",
        ),
    ] {
        let e = format!("{:#}", super::load(&dir.join(f)).unwrap_err());
        assert!(e.contains(key), "{f}: {e}");
    }
}

/// The new range checks accept every image in the repository.
#[test]
fn every_repository_manifest_still_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut paths = vec![root.join("app.toml"), root.join("task/ping/pingpong.toml")];
    for e in std::fs::read_dir(root.join("test-suite")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            paths.push(p);
        }
    }
    for p in paths {
        if !p.exists() {
            continue;
        }
        let chain = super::Chain::read(&p).unwrap();
        if chain.is_marked_base() {
            let e = format!("{:#}", super::load(&p).unwrap_err());
            assert!(e.contains("only a base"), "{}: {e}", p.display());
        } else {
            super::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
        }
    }
}

/// The six failure images and `tdx-absent` say only what differs from
/// their shared base, which is marked as one.
#[test]
fn the_tdx_failure_images_inherit_one_marked_base() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-suite");
    let base = suite.join("tdx-fail-base.toml");
    assert!(super::Chain::read(&base).unwrap().is_marked_base());
    for name in [
        "fail-config",
        "fail-keyconfig",
        "fail-lpinit",
        "fail-sysinit",
        "fail-sysrd",
        "fail-tdmrinit",
        "absent",
    ] {
        let chain = super::Chain::read(&suite.join(format!("tdx-{name}.toml"))).unwrap();
        let files: Vec<_> = chain.files().map(|f| f.file_name().unwrap()).collect();
        assert_eq!(files[1], "tdx-fail-base.toml", "{name}");
    }
}

#[test]
fn supervisor_and_idle_rules() {
    let e = err(&GOOD.replace("priority = 0", "priority = 1"));
    assert!(e.contains("must have priority 0"), "{e}");
    let e = err(&GOOD.replace("priority = 9", "priority = 2"));
    assert!(e.contains("`idle` must be strictly less important"), "{e}");
}
