//! Per-operation access lists, from the server task's manifest `config`.
//!
//! A server's manifest entry may carry
//!
//! ```toml
//! [tasks.my-server.config.access]
//! reset = ["jefe"]              # only these tasks may call `reset`
//! status = "any"                # explicit, same as leaving it out
//! ```
//!
//! Operations not listed are open to every task. Names are resolved to task
//! indices at build time; an unknown operation or task name is a build
//! error with a did-you-mean. Outside `cargo xtask` the task environment is
//! empty (no tasks, no config), so there is nothing to resolve and every
//! operation is open: such builds only type-check.

use std::collections::BTreeMap;

use build_util::TaskEnv;
use serde_json::Value;

use crate::{did_you_mean, Error, Interface};

/// Who may call one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Every task.
    Any,
    /// These tasks: (name, index), in the order the manifest lists them.
    Only(Vec<(String, u16)>),
}

/// Access rules by operation name; an operation without a rule is open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessList {
    /// Rules by operation.
    pub rules: BTreeMap<String, Rule>,
}

impl AccessList {
    /// Every operation open to every task.
    #[must_use]
    pub fn open() -> Self {
        AccessList::default()
    }

    /// The rule for `op`.
    #[must_use]
    pub fn rule(&self, op: &str) -> Rule {
        self.rules.get(op).cloned().unwrap_or(Rule::Any)
    }
}

/// Reads `config.access` of the task being built and resolves it against
/// `iface` and the image's task list.
///
/// # Errors
/// [`Error::Access`] for a malformed table, an unknown operation, an
/// unknown task, or a task index the kernel's 64-bit caller masks cannot
/// hold.
pub fn acl_from_task_env(env: &TaskEnv, iface: &Interface) -> Result<AccessList, Error> {
    let fail = |problem: String| Error::Access {
        task: env.name.clone(),
        problem,
    };
    let table = match env.config.get("access") {
        None | Some(Value::Null) => return Ok(AccessList::open()),
        Some(Value::Object(t)) => t,
        Some(_) => return Err(fail("must be a table of operation = [task names]".into())),
    };
    let mut list = AccessList::default();
    for (op, value) in table {
        if iface.ops.get(op).is_none() {
            let hint = did_you_mean(op, iface.ops.iter().map(|(n, _)| n))
                .map(|m| format!("; did you mean `{m}`?"))
                .unwrap_or_default();
            return Err(fail(format!(
                "interface {} has no operation `{op}`{hint}",
                iface.name
            )));
        }
        let rule = match value {
            Value::String(s) if s == "any" => Rule::Any,
            Value::Array(names) => {
                let mut tasks = Vec::new();
                for name in names {
                    let Value::String(name) = name else {
                        return Err(fail(format!("`{op}`: task names must be strings")));
                    };
                    let index = env.task_index(name).ok_or_else(|| {
                        let hint = did_you_mean(name, env.tasks.iter().map(String::as_str))
                            .map(|m| format!("; did you mean `{m}`?"))
                            .unwrap_or_default();
                        fail(format!("`{op}`: no task named `{name}`{hint}"))
                    })?;
                    // The runtime's caller masks are 64-bit, one bit per
                    // task, matching the kernel's task limit.
                    if usize::from(index) >= abi::MAX_TASKS {
                        return Err(fail(format!(
                            "`{op}`: task `{name}` has index {index}; access lists hold \
                             indices below {}",
                            abi::MAX_TASKS
                        )));
                    }
                    tasks.push((name.clone(), index));
                }
                Rule::Only(tasks)
            }
            _ => {
                return Err(fail(format!(
                    "`{op}`: expected a list of task names or \"any\""
                )))
            }
        };
        list.rules.insert(op.clone(), rule);
    }
    Ok(list)
}
