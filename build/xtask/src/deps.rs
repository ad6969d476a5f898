//! Installing what the commands need, saying so.
//!
//! `cargo xtask run` and `test` must work on a fresh machine: the Rust
//! target comes from rustup, QEMU from apt. Each install is announced
//! before it runs, and a failure says what to install by hand.
//!
//! Installing never takes anything away: before apt-get installs, the same
//! command runs simulated (`apt-get -s`), and a plan that would remove or
//! downgrade an installed package (Debian 12's `qemu-system-x86` against a
//! newer backports `qemu-utils`, say) is refused with one line naming the
//! packages; the real command carries `--no-remove` as well.

use std::process::Command;

use anyhow::{bail, Context, Result};

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program} >/dev/null 2>&1")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Ensures the `x86_64-unknown-none` target is installed.
pub fn ensure_target() -> Result<()> {
    let out = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let installed = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .any(|l| l.trim() == "x86_64-unknown-none"),
        // Without rustup, trust the toolchain; the build will say if not.
        Err(_) => return Ok(()),
    };
    if !installed {
        eprintln!("xtask: installing the Rust target x86_64-unknown-none (rustup target add)");
        let ok = Command::new("rustup")
            .args(["target", "add", "x86_64-unknown-none"])
            .status()?
            .success();
        if !ok {
            bail!("could not install the Rust target; run `rustup target add x86_64-unknown-none`");
        }
    }
    Ok(())
}

/// The oldest QEMU whose TCG emulates x2APIC.
pub const QEMU_WITH_X2APIC: (u32, u32) = (8, 1);

/// Where package-manager output goes (shown only when an install fails).
/// How long apt-get waits for another package manager's lock, in seconds.
const APT_LOCK_WAIT_S: u32 = 900;

fn apt_log() -> std::path::PathBuf {
    crate::dist::target_dir().join("xtask-apt.log")
}

/// The version `qemu-system-x86_64 --version` reports, if it runs.
#[must_use]
pub fn qemu_version() -> Option<(u32, u32)> {
    let out = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .ok()?;
    parse_qemu_version(&String::from_utf8_lossy(&out.stdout))
}

/// `QEMU emulator version 7.2.22 (Debian …)` → `(7, 2)`.
fn parse_qemu_version(text: &str) -> Option<(u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let mut parts = rest.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The Debian release codename from `/etc/os-release`, if this is Debian.
fn debian_codename() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release").ok()?;
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim_matches('"').to_string())
    };
    (field("ID=")? == "debian")
        .then(|| field("VERSION_CODENAME="))
        .flatten()
}

/// The source file this project adds for Debian 12's backports; the
/// distribution's own source files are never edited.
const BACKPORTS_SOURCE: &str = "/etc/apt/sources.list.d/tdxhost-bookworm-backports.sources";

/// A deb822 stanza for bookworm-backports on the mirror and key the
/// machine's own `bookworm` source uses (deb.debian.org if none is found).
fn backports_stanza(debian_sources: &str) -> String {
    let mut uri = "http://deb.debian.org/debian".to_string();
    let mut key = "/usr/share/keyrings/debian-archive-keyring.gpg".to_string();
    for stanza in debian_sources.split("\n\n") {
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let suites = field("Suites:").unwrap_or_default();
        if suites.split_whitespace().any(|s| s == "bookworm") {
            if let Some(u) =
                field("URIs:").and_then(|u| u.split_whitespace().next().map(String::from))
            {
                uri = u;
            }
            if let Some(k) = field("Signed-By:") {
                key = k;
            }
            break;
        }
    }
    format!(
        "# Added by tdxhost's `cargo xtask`: QEMU >= 8.1 (x2APIC under TCG) for Debian 12.\n\
         Types: deb\nURIs: {uri}\nSuites: bookworm-backports\nComponents: main\nSigned-By: {key}\n"
    )
}

/// Runs an apt-get command line (as root, or through sudo), its output
/// appended to the log. `Ok(false)` when apt-get refused or failed.
///
/// Another package manager may hold dpkg's lock (unattended upgrades, or a
/// second `cargo xtask` in another checkout installing the same thing):
/// apt-get waits for it rather than failing at once.
fn apt(args: &str) -> Result<bool> {
    let sudo = if running_as_root() { "" } else { "sudo " };
    let log = apt_log();
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let status = Command::new("sh")
        .args([
            "-c",
            &format!(
                "DEBIAN_FRONTEND=noninteractive {sudo}apt-get -o DPkg::Lock::Timeout={APT_LOCK_WAIT_S} {args} >>'{}' 2>&1",
                log.display()
            ),
        ])
        .status()
        .context("running apt-get")?;
    Ok(status.success())
}

/// Prints the end of the apt log, for a failed install.
fn show_apt_log() {
    let log = apt_log();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!("xtask: last lines of {}:", log.display());
    for l in text
        .lines()
        .rev()
        .take(20)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        eprintln!("  | {l}");
    }
}

/// What an `apt-get -s install` plan would do to installed packages.
#[derive(Debug, Default, PartialEq, Eq)]
struct Takes {
    /// `(package, installed version)` the plan removes.
    removed: Vec<(String, String)>,
    /// `(package, installed version, planned version)` it downgrades.
    downgraded: Vec<(String, String, String)>,
}

impl Takes {
    fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.downgraded.is_empty()
    }
}

impl std::fmt::Display for Takes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        for (p, v) in &self.removed {
            parts.push(format!("remove {p} {v}"));
        }
        for (p, old, new) in &self.downgraded {
            parts.push(format!("downgrade {p} {old} to {new}"));
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// Reads the `Remv` and `Inst` lines of `apt-get -s` output:
/// `Remv NAME [VERSION]`, and `Inst NAME [OLD] (NEW …)` for a package that
/// is installed (a new one has no `[OLD]`). An `Inst` whose NEW sorts
/// below OLD (Debian version order) is a downgrade.
fn simulated_takes(text: &str) -> Takes {
    let bracketed = |s: &str| {
        s.strip_prefix('[')
            .and_then(|r| r.split(']').next())
            .map(String::from)
    };
    let mut takes = Takes::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("Remv"), Some(name), v) => {
                let version = v.and_then(bracketed).unwrap_or_default();
                takes.removed.push((name.to_string(), version));
            }
            (Some("Inst"), Some(name), Some(v)) => {
                let (Some(old), Some(new)) = (bracketed(v), words.next()) else {
                    continue;
                };
                let new = new.trim_start_matches('(').to_string();
                if compare_debian_versions(&new, &old) == std::cmp::Ordering::Less {
                    takes.downgraded.push((name.to_string(), old, new));
                }
            }
            _ => {}
        }
    }
    takes
}

/// Debian's version order (Debian Policy §5.6.12, as dpkg implements it):
/// epoch numerically, then the upstream version, then the revision, each
/// compared in alternating runs of non-digits (letters before other
/// characters, `~` before everything, even the end) and digits
/// (numerically).
fn compare_debian_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.bytes().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((up, rev)) => (epoch, up, rev),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(c) if c.is_ascii_digit() => 0,
            Some(c) if c.is_ascii_alphabetic() => i32::from(c),
            Some(b'~') => -1,
            Some(c) => i32::from(c) + 256,
        }
    }
    fn part(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
        let (mut i, mut j) = (0, 0);
        let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
        while i < a.len() || j < b.len() {
            while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
                let (x, y) = (order(a.get(i).copied()), order(b.get(j).copied()));
                if x != y {
                    return x.cmp(&y);
                }
                i += 1;
                j += 1;
            }
            while a.get(i) == Some(&b'0') {
                i += 1;
            }
            while b.get(j) == Some(&b'0') {
                j += 1;
            }
            let mut first = std::cmp::Ordering::Equal;
            while digit(a, i) && digit(b, j) {
                if first == std::cmp::Ordering::Equal {
                    first = a[i].cmp(&b[j]);
                }
                i += 1;
                j += 1;
            }
            if digit(a, i) {
                return std::cmp::Ordering::Greater;
            }
            if digit(b, j) {
                return std::cmp::Ordering::Less;
            }
            if first != std::cmp::Ordering::Equal {
                return first;
            }
        }
        std::cmp::Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua.as_bytes(), ub.as_bytes()))
        .then_with(|| part(ra.as_bytes(), rb.as_bytes()))
}

/// Installs Debian packages, unless the simulated plan would remove or
/// downgrade something installed: then nothing is installed and the error
/// is one line naming what the plan would take. The real command still
/// carries `-y --no-remove`, so apt refuses rather than remove (or
/// replace) anything the user has, and never downgrades (we never pass
/// `--allow-downgrades`).
fn apt_install(packages: &str, release: Option<&str>) -> Result<bool> {
    apt_install_with(packages, release, "")
}

/// [`apt_install`] with extra apt-get options (e.g. `--no-install-recommends`).
fn apt_install_with(packages: &str, release: Option<&str>, options: &str) -> Result<bool> {
    let target = release.map(|r| format!("-t {r} ")).unwrap_or_default();
    let target = format!(
        "{options}{}{target}",
        if options.is_empty() { "" } else { " " }
    );
    let args = format!("install {target}{packages}");
    let sim = Command::new("sh")
        .args(["-c", &format!("LC_ALL=C apt-get -s -q {args} 2>&1")])
        .output()
        .context("running apt-get -s")?;
    let text = String::from_utf8_lossy(&sim.stdout);
    if let Ok(mut log) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(apt_log())
    {
        use std::io::Write as _;
        let _ = writeln!(log, "$ apt-get -s {args}\n{text}");
    }
    let takes = simulated_takes(&text);
    if !takes.is_empty() {
        bail!("not installing {packages}: apt-get would {takes}; install it by hand if that is what you want");
    }
    apt(&format!("install -y --no-remove {target}{packages}"))
}

/// Ensures `qemu-system-x86_64` is available. On Debian 12 it comes from
/// bookworm-backports (QEMU ≥ 8.1, which emulates x2APIC under TCG; it
/// also matches the backports `qemu-utils` such machines often carry);
/// elsewhere from the distribution. An installed QEMU is left alone if it
/// has x2APIC under TCG (≥ 8.1); an older one is upgraded from
/// bookworm-backports on Debian 12, and elsewhere kept with a warning (the
/// x2APIC image will say what it found).
pub fn ensure_qemu() -> Result<()> {
    match qemu_version() {
        Some(v) if v >= QEMU_WITH_X2APIC => return Ok(()),
        Some(v) if debian_codename().as_deref() != Some("bookworm") || !have("apt-get") => {
            eprintln!(
                "xtask: QEMU {}.{} predates x2APIC under TCG ({}.{}); the x2APIC image will fail — install a newer QEMU",
                v.0, v.1, QEMU_WITH_X2APIC.0, QEMU_WITH_X2APIC.1
            );
            return Ok(());
        }
        _ => {}
    }
    if !have("apt-get") {
        bail!("qemu-system-x86_64 is not installed and apt-get is unavailable; install QEMU >= {}.{} (x86_64 system emulator) by hand", QEMU_WITH_X2APIC.0, QEMU_WITH_X2APIC.1);
    }
    let codename = debian_codename();
    let backports = codename.as_deref() == Some("bookworm");
    eprintln!(
        "xtask: installing qemu-system-x86{} with apt-get (log: {})",
        if backports {
            " from bookworm-backports (QEMU >= 8.1)"
        } else {
            ""
        },
        apt_log().display()
    );
    if backports && !std::path::Path::new(BACKPORTS_SOURCE).exists() {
        let ours =
            std::fs::read_to_string("/etc/apt/sources.list.d/debian.sources").unwrap_or_default();
        std::fs::write(BACKPORTS_SOURCE, backports_stanza(&ours)).with_context(|| {
            format!("writing {BACKPORTS_SOURCE} (run as root, or add bookworm-backports yourself)")
        })?;
    }
    let mut ok = apt("update -qq")?;
    if ok {
        ok = apt_install("qemu-system-x86", backports.then_some("bookworm-backports"))?;
    }
    // A QEMU that is there now is good enough, whoever installed it.
    if qemu_version().is_none_or(|v| v < QEMU_WITH_X2APIC) {
        show_apt_log();
        bail!("installing qemu-system-x86 failed{} (the log's last lines are above; apt-get is told never to remove or downgrade a package); install QEMU >= {}.{} by hand", if ok { " although apt-get succeeded" } else { "" }, QEMU_WITH_X2APIC.0, QEMU_WITH_X2APIC.1);
    }
    Ok(())
}

/// The GRUB platforms the ISO carries: BIOS (i386-pc) and UEFI
/// (x86_64-efi), each with the Debian package that provides it.
const GRUB_PLATFORMS: &[(&str, &str)] = &[
    ("/usr/lib/grub/i386-pc", "grub-pc-bin"),
    ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin"),
];

/// Whether the hybrid ISO can be built: grub-mkrescue with both platforms,
/// xorriso, and mtools (for the EFI system partition image).
fn grub_ready() -> bool {
    have("grub-mkrescue")
        && have("xorriso")
        && have("mformat")
        && GRUB_PLATFORMS
            .iter()
            .all(|(dir, _)| std::path::Path::new(dir).is_dir())
}

/// Ensures GRUB's image builder can make an ISO that boots under BIOS and
/// UEFI, installing the Debian packages if not (never removing anything).
pub fn ensure_grub() -> Result<()> {
    if grub_ready() {
        return Ok(());
    }
    let packages = format!(
        "grub-common {} xorriso mtools",
        GRUB_PLATFORMS
            .iter()
            .map(|(_, p)| *p)
            .collect::<Vec<_>>()
            .join(" ")
    );
    if !have("apt-get") {
        bail!("GRUB tools are missing and apt-get is unavailable; install {packages}");
    }
    eprintln!(
        "xtask: installing GRUB tools ({packages}) with apt-get, to build the BIOS+UEFI boot ISO (log: {})",
        apt_log().display()
    );
    // Without recommends: grub-efi-amd64-bin recommends the signed GRUB
    // and shim, which are for installing a boot loader on this machine.
    if apt("update -qq")? {
        apt_install_with(&packages, None, "--no-install-recommends")?;
    }
    // Tools that are there now are good enough, whoever installed them.
    if !grub_ready() {
        show_apt_log();
        bail!("installing the GRUB tools failed (the log's last lines are above); install {packages} by hand");
    }
    Ok(())
}

/// UEFI firmware for QEMU: a code image and the variable store template
/// that goes with it (each run gets its own copy of the store). Debian 12's
/// `ovmf` ships both pairs; Debian 13's only the 4 MiB one.
const OVMF_PAIRS: &[(&str, &str)] = &[
    (
        "/usr/share/OVMF/OVMF_CODE_4M.fd",
        "/usr/share/OVMF/OVMF_VARS_4M.fd",
    ),
    (
        "/usr/share/OVMF/OVMF_CODE.fd",
        "/usr/share/OVMF/OVMF_VARS.fd",
    ),
];

/// OVMF's code image and variable-store template.
#[derive(Clone, Debug)]
pub struct Ovmf {
    pub code: std::path::PathBuf,
    pub vars: std::path::PathBuf,
}

fn find_ovmf() -> Option<Ovmf> {
    find_ovmf_in(OVMF_PAIRS)
}

/// The first pair whose code image and variable store both exist.
fn find_ovmf_in(pairs: &[(&str, &str)]) -> Option<Ovmf> {
    pairs.iter().find_map(|(code, vars)| {
        let (code, vars) = (std::path::Path::new(code), std::path::Path::new(vars));
        (code.is_file() && vars.is_file()).then(|| Ovmf {
            code: code.into(),
            vars: vars.into(),
        })
    })
}

/// Finds OVMF, installing Debian's `ovmf` if it is missing. A missing
/// firmware is an error that says so, never a silent skip.
pub fn ensure_ovmf() -> Result<Ovmf> {
    if let Some(o) = find_ovmf() {
        return Ok(o);
    }
    if !have("apt-get") {
        bail!("UEFI firmware for QEMU (OVMF_CODE*.fd and OVMF_VARS*.fd in /usr/share/OVMF) is missing and apt-get is unavailable; install OVMF by hand");
    }
    eprintln!(
        "xtask: installing ovmf (UEFI firmware for QEMU) with apt-get, for the UEFI boot runs (log: {})",
        apt_log().display()
    );
    if apt("update -qq")? {
        apt_install("ovmf", None)?;
    }
    find_ovmf().ok_or_else(|| {
        show_apt_log();
        anyhow::anyhow!("installing ovmf failed (the log's last lines are above): no OVMF_CODE*.fd/OVMF_VARS*.fd pair in /usr/share/OVMF; install the `ovmf` package by hand")
    })
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::{
        backports_stanza, compare_debian_versions, find_ovmf_in, parse_qemu_version,
        simulated_takes,
    };

    /// `apt-get -s install qemu-system-x86` on Debian 12 with the backports
    /// `qemu-utils` installed and the plain (stable) candidate: the plan the
    /// issue describes, which must be refused.
    const STABLE_OVER_BACKPORTS: &str = "\
Reading package lists...
Building dependency tree...
Reading state information...
The following packages will be REMOVED:
  qemu-block-extra
The following packages will be DOWNGRADED:
  qemu-utils
The following NEW packages will be installed:
  qemu-system-x86 qemu-system-common qemu-system-data
0 upgraded, 3 newly installed, 1 downgraded, 1 to remove and 0 not upgraded.
Remv qemu-block-extra [1:10.0.2+ds-2~bpo12+1]
Inst qemu-utils [1:10.0.2+ds-2~bpo12+1] (1:7.2+dfsg-7+deb12u18 Debian:12.12/stable [amd64])
Inst qemu-system-common (1:7.2+dfsg-7+deb12u18 Debian:12.12/stable [amd64])
Inst qemu-system-data (1:7.2+dfsg-7+deb12u18 Debian:12.12/stable [all])
Inst qemu-system-x86 (1:7.2+dfsg-7+deb12u18 Debian:12.12/stable [amd64])
Conf qemu-utils (1:7.2+dfsg-7+deb12u18 Debian:12.12/stable [amd64])
";

    /// The same from bookworm-backports: upgrades and new packages only.
    const FROM_BACKPORTS: &str = "\
The following NEW packages will be installed:
  qemu-system-x86
The following packages will be upgraded:
  qemu-utils
1 upgraded, 1 newly installed, 0 to remove and 0 not upgraded.
Inst qemu-utils [1:10.0.2+ds-1~bpo12+1] (1:10.0.2+ds-2~bpo12+1 Debian Backports:bookworm-backports [amd64])
Inst qemu-system-x86 (1:10.0.2+ds-2~bpo12+1 Debian Backports:bookworm-backports [amd64])
Conf qemu-utils (1:10.0.2+ds-2~bpo12+1 Debian Backports:bookworm-backports [amd64])
";

    #[test]
    fn a_plan_that_removes_or_downgrades_is_named_and_one_that_only_adds_is_clean() {
        let t = simulated_takes(STABLE_OVER_BACKPORTS);
        assert_eq!(
            t.removed,
            [("qemu-block-extra".into(), "1:10.0.2+ds-2~bpo12+1".into())]
        );
        assert_eq!(t.downgraded.len(), 1);
        assert_eq!(t.downgraded[0].0, "qemu-utils");
        assert_eq!(
            t.to_string(),
            "remove qemu-block-extra 1:10.0.2+ds-2~bpo12+1, downgrade qemu-utils 1:10.0.2+ds-2~bpo12+1 to 1:7.2+dfsg-7+deb12u18"
        );
        let clean = simulated_takes(FROM_BACKPORTS);
        assert!(clean.is_empty(), "{clean:?}");
        assert!(simulated_takes("").is_empty());
    }

    #[test]
    fn debian_versions_sort_as_dpkg_sorts_them() {
        let less = [
            ("1:7.2+dfsg-7+deb12u18", "1:10.0.2+ds-2~bpo12+1"),
            ("10.0.2+ds-2", "1:7.2"),
            ("1.0~rc1", "1.0"),
            ("1.0", "1.0-1"),
            ("1.0-1", "1.0-1+b1"),
            ("1.0a", "1.0+"),
            ("2.9", "2.10"),
            ("1:10.0.2+ds-2~bpo12+1", "1:10.0.2+ds-2"),
        ];
        for (a, b) in less {
            assert_eq!(compare_debian_versions(a, b), Ordering::Less, "{a} < {b}");
            assert_eq!(
                compare_debian_versions(b, a),
                Ordering::Greater,
                "{b} > {a}"
            );
        }
        assert_eq!(compare_debian_versions("1.007", "1.7"), Ordering::Equal);
        assert_eq!(compare_debian_versions("0:1.0", "1.0"), Ordering::Equal);
    }

    #[test]
    fn ovmf_needs_both_halves_of_a_pair() {
        let dir = std::env::temp_dir().join(format!("xtask-ovmf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = |n: &str| dir.join(n).display().to_string();
        std::fs::write(dir.join("CODE_4M.fd"), b"c").unwrap();
        std::fs::write(dir.join("CODE.fd"), b"c").unwrap();
        std::fs::write(dir.join("VARS.fd"), b"v").unwrap();
        let (c4, v4, c2, v2) = (
            path("CODE_4M.fd"),
            path("VARS_4M.fd"),
            path("CODE.fd"),
            path("VARS.fd"),
        );
        // The 4 MiB code image has no variable store: the next pair is used.
        let found = find_ovmf_in(&[(&c4, &v4), (&c2, &v2)]).unwrap();
        assert_eq!(found.code.display().to_string(), c2);
        assert!(find_ovmf_in(&[(&c4, &v4)]).is_none());
        assert!(find_ovmf_in(&[]).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reads_qemu_versions() {
        assert_eq!(
            parse_qemu_version("QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\n"),
            Some((7, 2))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2)"),
            Some((10, 0))
        );
        assert_eq!(parse_qemu_version("something else"), None);
    }

    #[test]
    fn backports_follow_the_machines_own_mirror_and_key() {
        let own = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n";
        let s = backports_stanza(own);
        assert!(s.contains("URIs: http://mirror.example/debian\n"), "{s}");
        assert!(s.contains("Suites: bookworm-backports\n"), "{s}");
        assert!(s.contains("Signed-By: /k.gpg\n"), "{s}");
        let default = backports_stanza("");
        assert!(
            default.contains("URIs: http://deb.debian.org/debian\n"),
            "{default}"
        );
    }
}
