//! Provisioned concurrency's budget: a configuration counts against the
//! concurrency limits as Lambda counts it, within the function's reserved
//! concurrency when it has one, else within what the account has left
//! after every reservation and every other unreserved function's
//! provisioned concurrency; and its warm VMs' memory within the memory
//! budget, beside every other configuration's.

use mayfly_store::Store;

use crate::error::HostResult;
use crate::memory::MemoryLimits;
use crate::settings::RunSettings;

/// The memory of the VMs a configuration keeps warm, in MB: `requested`
/// VMs of the memory of the version `function:qualifier` names.
fn held_mb(store: &Store, function: &str, qualifier: &str, requested: u32) -> HostResult<u64> {
    let version = store.resolve(function, Some(qualifier))?.version;
    let memory = RunSettings::from_config(&version.config).memory_mb;
    Ok(u64::from(requested) * u64::from(memory))
}

/// Whether `requested` warm VMs of `function:qualifier` fit in the memory
/// budget beside every other configuration's; the error message if not.
pub fn check_memory(
    store: &Store,
    limits: &MemoryLimits,
    function: &str,
    qualifier: &str,
    requested: u32,
) -> HostResult<Result<(), String>> {
    let wanted = held_mb(store, function, qualifier, requested)?;
    let mut others = 0u64;
    for config in store.list_all_provisioned_configs()? {
        if config.function_name == function && config.qualifier == qualifier {
            continue;
        }
        match held_mb(
            store,
            &config.function_name,
            &config.qualifier,
            config.requested,
        ) {
            Ok(mb) => others += mb,
            // A configuration whose qualifier is gone holds no VMs.
            Err(crate::error::HostError::Store(e)) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let with_qemu = wanted + u64::from(requested) * limits.overhead_mb;
    if others + wanted > limits.budget_mb || others + with_qemu > limits.host_limit_mb {
        return Ok(Err(format!(
            "Requested provisioned concurrency needs {wanted} MB of memory ({requested} VMs), \
             but the host's memory budget is {} MB and other provisioned concurrency \
             configurations hold {others} MB.",
            limits.budget_mb
        )));
    }
    Ok(Ok(()))
}

/// What a new configuration must fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The account-wide limit.
    pub account_limit: u32,
    /// The function's reserved concurrency, if any.
    pub reserved: Option<u32>,
    /// The function's other configurations (other qualifiers), summed.
    pub same_function: u64,
    /// Every function's reserved concurrency, summed.
    pub all_reserved: u64,
    /// The configurations of functions without a reservation, other than
    /// this function's, summed.
    pub other_unreserved_provisioned: u64,
}

/// Whether `requested` more provisioned VMs fit; the error message if not.
pub fn check_budget(requested: u32, budget: &Budget) -> Result<(), String> {
    let wanted = budget.same_function + u64::from(requested);
    match budget.reserved {
        Some(reserved) if wanted > u64::from(reserved) => Err(format!(
            "Requested Provisioned Concurrency should not be greater than the reservedConcurrentExecution \
             for function ({reserved}; its other provisioned configurations hold {}).",
            budget.same_function
        )),
        Some(_) => Ok(()),
        None => {
            let free = u64::from(budget.account_limit)
                .saturating_sub(budget.all_reserved)
                .saturating_sub(budget.other_unreserved_provisioned);
            if wanted > free {
                Err(format!(
                    "Specified ConcurrentExecutions for function is greater than account's unreserved \
                     concurrency [{free}] (its other provisioned configurations hold {}).",
                    budget.same_function
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// What a configuration of `function:qualifier` must fit in now.
pub fn budget_for(
    store: &Store,
    account_limit: u32,
    function: &str,
    qualifier: &str,
) -> HostResult<Budget> {
    let mut budget = Budget {
        account_limit,
        reserved: store.get_reserved_concurrency(function)?,
        same_function: 0,
        all_reserved: store.total_reserved_concurrency(None)?,
        other_unreserved_provisioned: 0,
    };
    for config in store.list_all_provisioned_configs()? {
        if config.function_name == function {
            if config.qualifier != qualifier {
                budget.same_function += u64::from(config.requested);
            }
        } else if store
            .get_reserved_concurrency(&config.function_name)?
            .is_none()
        {
            budget.other_unreserved_provisioned += u64::from(config.requested);
        }
    }
    Ok(budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget {
            account_limit: 10,
            reserved: None,
            same_function: 0,
            all_reserved: 0,
            other_unreserved_provisioned: 0,
        }
    }

    #[test]
    fn reserved_concurrency_bounds_the_function() {
        let b = Budget {
            reserved: Some(3),
            same_function: 1,
            ..budget()
        };
        assert!(check_budget(2, &b).is_ok());
        assert!(check_budget(3, &b)
            .unwrap_err()
            .contains("reservedConcurrentExecution"));
    }

    #[test]
    fn unreserved_functions_share_what_is_left() {
        let b = Budget {
            all_reserved: 4,
            other_unreserved_provisioned: 3,
            same_function: 1,
            ..budget()
        };
        assert!(check_budget(2, &b).is_ok());
        assert!(check_budget(3, &b).unwrap_err().contains("[3]"));
        let full = Budget {
            all_reserved: 12,
            ..budget()
        };
        assert!(check_budget(1, &full).is_err());
    }
}
