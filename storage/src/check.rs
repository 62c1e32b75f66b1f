//! Validation shared by every storage, so that they accept and reject exactly
//! the same commits and rewinds.

use crate::{ChainParams, ChangeSet, StorageError, TopoHeight};

/// Most multisig participants a stored config can hold (the count is one byte).
pub(crate) const MAX_PARTICIPANTS: usize = u8::MAX as usize;

/// Checks that `changes` (with `params`) may be committed on a store whose top is `top`.
pub(crate) fn check_commit(
    top: Option<TopoHeight>,
    changes: &ChangeSet,
    params: Option<&ChainParams>,
) -> Result<(), StorageError> {
    let got = changes.topoheight;
    match top {
        None => {
            if got != 0 {
                return Err(StorageError::NotNextTopoheight {
                    expected: None,
                    got,
                });
            }
            if params.is_none() {
                return Err(StorageError::GenesisParams);
            }
        }
        Some(top) => {
            let expected = top.checked_add(1);
            if expected != Some(got) {
                return Err(StorageError::NotNextTopoheight { expected, got });
            }
            if params.is_some() {
                return Err(StorageError::GenesisParams);
            }
        }
    }
    for (account, config) in &changes.multisigs {
        if let Some(config) = config {
            if config.participants.len() > MAX_PARTICIPANTS {
                return Err(StorageError::InvalidValue {
                    column: "multisig",
                    reason: format!(
                        "{} participants for {account} (at most {MAX_PARTICIPANTS})",
                        config.participants.len()
                    ),
                });
            }
        }
    }
    for (account, energy) in &changes.energies {
        if u32::try_from(energy.records.len()).is_err() {
            return Err(StorageError::InvalidValue {
                column: "energy",
                reason: format!("{} freeze records for {account}", energy.records.len()),
            });
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
