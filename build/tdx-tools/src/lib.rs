//! Host tools for the TDX planner, called by `cargo xtask`.
//!
//! Pattern: two command entry points that return an exit code (`Ok(0)` success, `Ok(1)`/`Ok(2)`
//! a negative verdict, `Err` a usage/I/O problem) over shared JSON formats ([`format`]):
//! - [`plan_command`]: run `tdx_planner::plan_tdmrs` on an INPUT, print a table (and the Linux
//!   baseline's outcome beside it), optionally write PLAN JSON and an SVG memory map;
//! - [`check_config_command`]: run `tdx-emu`'s TDH.SYS.CONFIG validation (§6) on a PLAN against
//!   the CMRs and limits of an INPUT.

pub mod emu;
pub mod format;
pub mod report;
pub mod svg;

use std::path::Path;

use anyhow::{Context, Result};
use tdx_planner::baseline::plan_linux_baseline;
use tdx_planner::{plan_tdmrs, Plan, PlanError, PlanInput};

/// Runs our planner on `input` into a boxed plan (the plan is under 48 KiB; keep it off the stack).
///
/// # Errors
/// The planner's [`PlanError`].
pub fn run_planner(input: &PlanInput<'_>) -> Result<Box<Plan>, PlanError> {
    let mut plan = Box::<Plan>::default();
    plan_tdmrs(input, &mut plan)?;
    Ok(plan)
}

/// Runs the Linux-equivalent baseline planner.
///
/// # Errors
/// The baseline's [`PlanError`] (Linux's failure).
pub fn run_baseline(input: &PlanInput<'_>) -> Result<Box<Plan>, PlanError> {
    let mut plan = Box::<Plan>::default();
    plan_linux_baseline(input, &mut plan)?;
    Ok(plan)
}

/// `cargo xtask plan INPUT [-o PLAN] [--svg MAP]`.
///
/// Prints the plan table; writes PLAN JSON to `output` and an SVG to `svg` if given. An infeasible
/// input prints one line (`infeasible: <reason>`) and returns `Ok(2)`; success returns `Ok(0)`.
///
/// # Errors
/// Unreadable or malformed INPUT, or unwritable outputs.
pub fn plan_command(input: &Path, output: Option<&Path>, svg: Option<&Path>) -> Result<i32> {
    let (json, owned) = format::read_input(input)?;
    let pi = owned.as_plan_input();
    let plan = match run_planner(&pi) {
        Ok(p) => p,
        Err(e) => {
            println!("infeasible: {e}");
            return Ok(2);
        }
    };
    let baseline = run_baseline(&pi);
    print!("{}", report::table(&pi, &plan, &baseline));
    if let Some(out) = output {
        let text = serde_json::to_string_pretty(&format::plan_to_json(&plan))?;
        std::fs::write(out, text + "\n").with_context(|| format!("writing {}", out.display()))?;
    }
    if let Some(path) = svg {
        let title = json
            .description
            .as_deref()
            .unwrap_or_else(|| input.to_str().unwrap_or("plan"));
        let doc = svg::render(&pi, &plan, title);
        std::fs::write(path, doc).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

/// `cargo xtask check-config INPUT PLAN`.
///
/// Prints the TDH.SYS.CONFIG status as `0x… NAME details`; `Ok(0)` only on TDX_SUCCESS.
///
/// # Errors
/// Unreadable or malformed files.
pub fn check_config_command(input: &Path, plan: &Path) -> Result<i32> {
    let (_, owned) = format::read_input(input)?;
    let plan = format::read_plan(plan)?;
    let infos = format::plan_json_to_infos(&plan)?;
    let status = emu::check(&owned, &infos)?;
    println!("{status}");
    Ok(if status.is_success() { 0 } else { 1 })
}
