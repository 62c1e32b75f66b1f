//! Validation shared by every storage, so that they accept and reject exactly
//! the same inits, commits and rewinds.

use crate::{ChangeSet, StateKey, StateValue, StorageError, TopoHeight};

/// Most multisig participants a stored config can hold (the count is one byte).
pub(crate) const MAX_PARTICIPANTS: usize = u8::MAX as usize;

/// Checks that `genesis` may initialise a store whose top is `top`.
pub(crate) fn check_init(top: Option<TopoHeight>, genesis: &ChangeSet) -> Result<(), StorageError> {
    if top.is_some() {
        return Err(StorageError::Genesis("the store already holds a genesis"));
    }
    if genesis.topoheight != 0 {
        return Err(StorageError::NotNextTopoheight {
            expected: None,
            got: genesis.topoheight,
        });
    }
    check_values(genesis)
}

/// Checks that `changes` may be committed on a store whose top is `top`.
pub(crate) fn check_commit(
    top: Option<TopoHeight>,
    changes: &ChangeSet,
) -> Result<(), StorageError> {
    let Some(top) = top else {
        return Err(StorageError::Genesis(
            "the store holds no chain: initialise it with a genesis first",
        ));
    };
    let expected = top.checked_add(1);
    if expected != Some(changes.topoheight) {
        return Err(StorageError::NotNextTopoheight {
            expected,
            got: changes.topoheight,
        });
    }
    check_values(changes)
}

/// Every value fits its key and the stored encodings.
fn check_values(changes: &ChangeSet) -> Result<(), StorageError> {
    for (key, value) in changes.iter() {
        let invalid = |column, reason: String| Err(StorageError::InvalidValue { column, reason });
        match (key, value) {
            (StateKey::Nonce(_) | StateKey::Balance(..), StateValue::Counter(_))
            | (StateKey::Slot(..), StateValue::Word(_)) => {}
            (StateKey::Code(contract), StateValue::Code(code)) => {
                if u32::try_from(code.len()).is_err() {
                    return invalid(
                        "code",
                        format!("{} bytes of code for {contract}", code.len()),
                    );
                }
            }
            (StateKey::Multisig(account), StateValue::Multisig(config)) => {
                if let Some(config) = config {
                    if config.participants.len() > MAX_PARTICIPANTS {
                        return invalid(
                            "multisig",
                            format!(
                                "{} participants for {account} (at most {MAX_PARTICIPANTS})",
                                config.participants.len()
                            ),
                        );
                    }
                }
            }
            (StateKey::Energy(account), StateValue::Energy(energy)) => {
                if u32::try_from(energy.records.len()).is_err() {
                    return invalid(
                        "energy",
                        format!("{} freeze records for {account}", energy.records.len()),
                    );
                }
            }
            (key, value) => {
                return invalid("state", format!("{key} cannot hold {value:?}"));
            }
        }
    }
    Ok(())
}

/// Checks that a store whose top is `top` may be rewound to `target`.
pub(crate) fn check_rewind(
    top: Option<TopoHeight>,
    target: TopoHeight,
) -> Result<(), StorageError> {
    match top {
        Some(top) if target <= top => Ok(()),
        _ => Err(StorageError::RewindAboveTop { target, top }),
    }
}
