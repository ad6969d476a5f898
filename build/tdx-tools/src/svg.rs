//! Self-contained SVG memory map of a plan.
//!
//! Pattern: a piecewise scale. Every range boundary (CMRs, RAM, TDMRs, reserved areas, PAMTs)
//! cuts the address space into segments; each segment gets a width that grows with the logarithm
//! of its length, so a 4 KiB firmware hole stays visible next to a 1 TiB DIMM range. Rows, top to
//! bottom: CMRs, online RAM (coloured by node), offline RAM, excluded, TDMRs, reserved areas, PAMTs.

use std::fmt::Write as _;

use tdx_planner::{Plan, PlanInput};

const LEFT: f64 = 110.0;
const WIDTH: f64 = 1600.0;
const ROW_H: f64 = 26.0;
const NODE_COLOURS: [&str; 8] = [
    "#4c9f70", "#3b7dd8", "#d88b3b", "#9b59b6", "#16a085", "#c0392b", "#7f8c8d", "#2c3e50",
];

struct Scale {
    cuts: Vec<u64>,
    xs: Vec<f64>,
}

impl Scale {
    fn new(mut cuts: Vec<u64>) -> Self {
        cuts.sort_unstable();
        cuts.dedup();
        let raw: Vec<f64> = cuts
            .windows(2)
            .map(|w| 3.0 + 5.0 * (((w[1] - w[0]) as f64 / 4096.0) + 1.0).log2())
            .collect();
        let total: f64 = raw.iter().sum::<f64>().max(1.0);
        let mut xs = vec![LEFT];
        for r in raw {
            let last = *xs.last().unwrap_or(&LEFT);
            xs.push(last + (r * WIDTH / total).max(1.0));
        }
        Scale { cuts, xs }
    }

    fn x(&self, addr: u64) -> f64 {
        match self.cuts.binary_search(&addr) {
            Ok(i) => self.xs[i],
            Err(0) => self.xs[0],
            Err(i) if i >= self.cuts.len() => *self.xs.last().unwrap_or(&LEFT),
            Err(i) => {
                let (a, b) = (self.cuts[i - 1], self.cuts[i]);
                let f = (addr - a) as f64 / (b - a) as f64;
                self.xs[i - 1] + f * (self.xs[i] - self.xs[i - 1])
            }
        }
    }
}

fn rect(s: &mut String, sc: &Scale, row: usize, start: u64, end: u64, fill: &str, title: &str) {
    let (x0, x1) = (sc.x(start), sc.x(end));
    let y = 40.0 + row as f64 * (ROW_H + 6.0);
    let _ = writeln!(
        s,
        r##"<rect x="{x0:.2}" y="{y:.1}" width="{:.2}" height="{ROW_H}" fill="{fill}" stroke="#222" stroke-width="0.3"><title>{title} [{start:#x}, {end:#x})</title></rect>"##,
        (x1 - x0).max(0.8)
    );
}

/// Renders the SVG document.
#[must_use]
pub fn render(input: &PlanInput<'_>, plan: &Plan, title: &str) -> String {
    let mut cuts = Vec::new();
    let mut push = |b: u64, sz: u64| {
        cuts.push(b);
        cuts.push(b.saturating_add(sz));
    };
    for c in input.cmrs {
        push(c.base().0, c.size().0);
    }
    for m in input.memory.iter().chain(input.offline) {
        push(m.range.base().0, m.range.size().0);
    }
    for t in &plan.tdmrs {
        push(t.base.0, t.size.0);
        for a in &t.reserved {
            push(t.base.0 + a.offset.0, a.size.0);
        }
    }
    for b in &plan.pamt_blocks {
        push(b.range.base().0, b.range.size().0);
    }
    let sc = Scale::new(cuts);
    let rows = [
        "CMRs",
        "RAM online",
        "RAM offline",
        "excluded",
        "TDMRs",
        "reserved",
        "PAMT",
    ];
    let height = 40.0 + rows.len() as f64 * (ROW_H + 6.0) + 130.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{:.0}" height="{height:.0}" font-family="monospace" font-size="11">"#,
        LEFT + WIDTH + 40.0
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14">{}</text>"#,
        escape(title)
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 40.0 + i as f64 * (ROW_H + 6.0) + ROW_H * 0.65;
        let _ = writeln!(s, r#"<text x="8" y="{y:.1}">{r}</text>"#);
    }
    for c in input.cmrs.iter().filter(|c| c.size().0 > 0) {
        rect(
            &mut s,
            &sc,
            0,
            c.base().0,
            c.base().0 + c.size().0,
            "#cfd8dc",
            "CMR",
        );
    }
    for m in input.memory {
        let col = NODE_COLOURS[usize::from(m.node) % NODE_COLOURS.len()];
        let t = format!("RAM node {}", m.node);
        rect(
            &mut s,
            &sc,
            1,
            m.range.base().0,
            m.range.base().0 + m.range.size().0,
            col,
            &t,
        );
    }
    for m in input.offline {
        let t = format!("offline node {}", m.node);
        rect(
            &mut s,
            &sc,
            2,
            m.range.base().0,
            m.range.base().0 + m.range.size().0,
            "#b0bec5",
            &t,
        );
    }
    for e in input.excluded {
        rect(
            &mut s,
            &sc,
            3,
            e.base().0,
            e.base().0 + e.size().0,
            "#e57373",
            "excluded",
        );
    }
    for (i, t) in plan.tdmrs.iter().enumerate() {
        let fill = if i % 2 == 0 { "#fff59d" } else { "#ffe082" };
        let label = format!("TDMR {i} node {}", t.node);
        rect(&mut s, &sc, 4, t.base.0, t.base.0 + t.size.0, fill, &label);
        for (j, a) in t.reserved.iter().enumerate() {
            let st = t.base.0 + a.offset.0;
            rect(
                &mut s,
                &sc,
                5,
                st,
                st + a.size.0,
                "#8d6e63",
                &format!("TDMR {i} reserved {j}"),
            );
        }
    }
    for b in &plan.pamt_blocks {
        let t = format!("PAMT node {}", b.node);
        rect(
            &mut s,
            &sc,
            6,
            b.range.base().0,
            b.range.base().0 + b.range.size().0,
            "#d32f2f",
            &t,
        );
    }
    // Address labels at TDMR and CMR boundaries.
    let mut labels: Vec<u64> = plan
        .tdmrs
        .iter()
        .flat_map(|t| [t.base.0, t.base.0 + t.size.0])
        .collect();
    labels.extend(
        input
            .cmrs
            .iter()
            .filter(|c| c.size().0 > 0)
            .flat_map(|c| [c.base().0, c.base().0 + c.size().0]),
    );
    labels.sort_unstable();
    labels.dedup();
    let ybase = 40.0 + rows.len() as f64 * (ROW_H + 6.0) + 6.0;
    let mut last_x = f64::NEG_INFINITY;
    for a in labels {
        let x = sc.x(a);
        if x - last_x < 12.0 {
            continue;
        }
        last_x = x;
        let _ = writeln!(
            s,
            r##"<line x1="{x:.2}" y1="40" x2="{x:.2}" y2="{ybase:.1}" stroke="#999" stroke-width="0.3"/><text transform="translate({x:.2},{:.1}) rotate(60)">{a:#x}</text>"##,
            ybase + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(t: &str) -> String {
    t.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
