//! JSON formats: INPUT (CMRs, memory, limits) and PLAN (TDMRs with PAMTs and reserved areas).
//!
//! Pattern: serde structs with `deny_unknown_fields`, so a typo is an error rather than a silently
//! ignored key. Numbers are read as JSON integers or as strings (`"0x…"` hex or decimal) and always
//! written as integers. Conversions to and from `tdx-planner` types are lossless; range checks are
//! left to the planner (inputs) and to `check_config` (plans), which report them precisely.

use std::fmt;

use anyhow::{Context, Result};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tdx_planner::{
    ByteLen, Limits, MemRange, PamtLevel, PhysAddr, PhysRange, Plan, ReservedArea, Tdmr,
    MAX_RESERVED_PER_TDMR,
};

/// A `u64` that deserializes from an integer or a `"0x…"`/decimal string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Num(pub u64);

impl Serialize for Num {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

struct NumVisitor;

impl Visitor<'_> for NumVisitor {
    type Value = Num;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer or a \"0x…\" string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Num, E> {
        Ok(Num(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Num, E> {
        u64::try_from(v)
            .map(Num)
            .map_err(|_| E::custom("negative number"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Num, E> {
        let t = v.trim().replace('_', "");
        let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => t.parse::<u64>(),
        };
        parsed
            .map(Num)
            .map_err(|_| E::custom(format!("bad number {v:?}")))
    }
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Num, D::Error> {
        d.deserialize_any(NumVisitor)
    }
}

/// `{"base", "size"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeJson {
    /// Base address.
    pub base: Num,
    /// Size in bytes.
    pub size: Num,
}

/// `{"base", "size", "node"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemJson {
    /// Base address.
    pub base: Num,
    /// Size in bytes.
    pub size: Num,
    /// NUMA node.
    #[serde(default)]
    pub node: Num,
}

/// PAMT entry sizes per level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrySizesJson {
    /// 4K level.
    #[serde(rename = "4k")]
    pub k4: Num,
    /// 2M level.
    #[serde(rename = "2m")]
    pub m2: Num,
    /// 1G level.
    #[serde(rename = "1g")]
    pub g1: Num,
}

/// Module limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsJson {
    /// MAX_TDMRS.
    pub max_tdmrs: Num,
    /// MAX_RESERVED_PER_TDMR.
    pub max_reserved_per_tdmr: Num,
    /// PAMT entry sizes.
    pub pamt_entry_size: EntrySizesJson,
}

/// INPUT file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputJson {
    /// Free-form description (fixtures say where the layout comes from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Module limits.
    pub limits: LimitsJson,
    /// CMRs.
    pub cmrs: Vec<RangeJson>,
    /// Online RAM.
    pub memory: Vec<MemJson>,
    /// Memory to cover that is not online at boot (hotplug).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline: Vec<MemJson>,
    /// Ranges that must not hold PAMTs (kernel image etc.).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded: Vec<RangeJson>,
    /// Usable physical-address width (MAXPHYADDR minus KeyID bits), 30..=46; default 46.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pa_bits: Option<Num>,
}

/// The default usable address width: MAXPHYADDR 52 minus 6 KeyID bits.
pub const DEFAULT_PA_BITS: u8 = 46;
/// KeyID bits of the emulated platform `check-config` builds (§1.1).
pub const EMU_KEYID_BITS: u8 = 6;

/// `{"offset", "size"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservedJson {
    /// Offset from the TDMR base.
    pub offset: Num,
    /// Size in bytes.
    pub size: Num,
}

/// One TDMR of a PLAN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TdmrJson {
    /// Base.
    pub base: Num,
    /// Size.
    pub size: Num,
    /// 4K PAMT.
    pub pamt_4k: RangeJson,
    /// 2M PAMT.
    pub pamt_2m: RangeJson,
    /// 1G PAMT.
    pub pamt_1g: RangeJson,
    /// Reserved areas (at most 16; absent slots are null).
    #[serde(default)]
    pub reserved: Vec<ReservedJson>,
}

/// PLAN file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanJson {
    /// TDMRs in SYS.CONFIG order.
    pub tdmrs: Vec<TdmrJson>,
    /// Total PAMT bytes.
    pub pamt_bytes: Num,
}

fn u16_field(n: Num, what: &str) -> Result<u16> {
    u16::try_from(n.0).with_context(|| format!("{what} = {} does not fit in 16 bits", n.0))
}

/// The checked range of a JSON `{base, size}`; a range that wraps the 64-bit space is an error.
fn range(r: &RangeJson) -> Result<PhysRange> {
    PhysRange::new(r.base.0, r.size.0).with_context(|| {
        format!(
            "range base {:#x} size {:#x} wraps the 64-bit address space",
            r.base.0, r.size.0
        )
    })
}

fn mem(m: &MemJson) -> Result<MemRange> {
    Ok(MemRange {
        range: range(&RangeJson {
            base: m.base,
            size: m.size,
        })?,
        node: u16_field(m.node, "node")?,
    })
}

/// Owned, converted INPUT; borrow it as a [`tdx_planner::PlanInput`] with [`Input::as_plan_input`].
#[derive(Clone, Debug)]
pub struct Input {
    /// CMRs.
    pub cmrs: Vec<PhysRange>,
    /// Online RAM.
    pub memory: Vec<MemRange>,
    /// Offline memory.
    pub offline: Vec<MemRange>,
    /// Excluded ranges.
    pub excluded: Vec<PhysRange>,
    /// Limits.
    pub limits: Limits,
    /// Usable physical-address width.
    pub pa_bits: tdx_planner::PaBits,
}

impl Input {
    /// Converts the JSON form.
    ///
    /// # Errors
    /// A limit or node that does not fit in 16 bits, or a range that wraps.
    pub fn from_json(j: &InputJson) -> Result<Self> {
        let l = &j.limits;
        let limits = Limits {
            max_tdmrs: u16_field(l.max_tdmrs, "max_tdmrs")?,
            max_reserved_per_tdmr: u16_field(l.max_reserved_per_tdmr, "max_reserved_per_tdmr")?,
            pamt_entry_size: [
                u16_field(l.pamt_entry_size.k4, "pamt_entry_size.4k")?,
                u16_field(l.pamt_entry_size.m2, "pamt_entry_size.2m")?,
                u16_field(l.pamt_entry_size.g1, "pamt_entry_size.1g")?,
            ],
        };
        let pa_bits = match j.pa_bits {
            None => DEFAULT_PA_BITS,
            Some(n) => u8::try_from(n.0)
                .ok()
                .filter(|b| (30..=DEFAULT_PA_BITS).contains(b))
                .with_context(|| format!("pa_bits = {} is outside 30..={DEFAULT_PA_BITS}", n.0))?,
        };
        Ok(Input {
            pa_bits: tdx_planner::PaBits(pa_bits),
            cmrs: j.cmrs.iter().map(range).collect::<Result<_>>()?,
            memory: j.memory.iter().map(mem).collect::<Result<_>>()?,
            offline: j.offline.iter().map(mem).collect::<Result<_>>()?,
            excluded: j.excluded.iter().map(range).collect::<Result<_>>()?,
            limits,
        })
    }

    /// The planner's view.
    #[must_use]
    pub fn as_plan_input(&self) -> tdx_planner::PlanInput<'_> {
        tdx_planner::PlanInput {
            cmrs: &self.cmrs,
            memory: &self.memory,
            offline: &self.offline,
            excluded: &self.excluded,
            limits: self.limits,
            pa_bits: self.pa_bits,
        }
    }
}

/// Reads and parses an INPUT file.
///
/// # Errors
/// I/O or JSON errors (including unknown keys).
pub fn read_input(path: &std::path::Path) -> Result<(InputJson, Input)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let j: InputJson =
        serde_json::from_str(&text).with_context(|| format!("parsing INPUT {}", path.display()))?;
    let input = Input::from_json(&j).with_context(|| format!("in {}", path.display()))?;
    Ok((j, input))
}

/// Reads and parses a PLAN file.
///
/// # Errors
/// I/O or JSON errors (including unknown keys).
pub fn read_plan(path: &std::path::Path) -> Result<PlanJson> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing PLAN {}", path.display()))
}

fn range_json(r: PhysRange) -> RangeJson {
    RangeJson {
        base: Num(r.base().0),
        size: Num(r.size().0),
    }
}

/// A planner result as PLAN JSON.
#[must_use]
pub fn plan_to_json(plan: &Plan) -> PlanJson {
    PlanJson {
        tdmrs: plan
            .tdmrs
            .iter()
            .map(|t| TdmrJson {
                base: Num(t.base.0),
                size: Num(t.size.0),
                pamt_4k: range_json(t.pamt[PamtLevel::K4 as usize]),
                pamt_2m: range_json(t.pamt[PamtLevel::M2 as usize]),
                pamt_1g: range_json(t.pamt[PamtLevel::G1 as usize]),
                reserved: t
                    .reserved
                    .iter()
                    .map(|a| ReservedJson {
                        offset: Num(a.offset.0),
                        size: Num(a.size.0),
                    })
                    .collect(),
            })
            .collect(),
        pamt_bytes: Num(plan.pamt_bytes.0),
    }
}

/// A PLAN's TDMRs as module `TDMR_INFO`s (at most 16 reserved areas each).
///
/// # Errors
/// More than 16 reserved areas in one TDMR, or a PAMT range that wraps.
pub fn plan_json_to_infos(plan: &PlanJson) -> Result<Vec<tdx_abi::TdmrInfo>> {
    plan.tdmrs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            anyhow::ensure!(
                t.reserved.len() <= MAX_RESERVED_PER_TDMR,
                "TDMR {i} lists {} reserved areas; TDMR_INFO has {MAX_RESERVED_PER_TDMR} slots",
                t.reserved.len()
            );
            let mut tdmr = Tdmr {
                base: PhysAddr(t.base.0),
                size: ByteLen(t.size.0),
                pamt: [range(&t.pamt_4k)?, range(&t.pamt_2m)?, range(&t.pamt_1g)?],
                ..Tdmr::default()
            };
            for a in &t.reserved {
                let _ = tdmr.reserved.push(ReservedArea {
                    offset: ByteLen(a.offset.0),
                    size: ByteLen(a.size.0),
                });
            }
            Ok(tdx_planner::abi::to_tdmr_info(&tdmr))
        })
        .collect()
}
