//! Observable results (SPEC §7): the state dump and per-block result lines,
//! as canonical JSON (object keys sorted, since `serde_json::Map` is ordered).

use serde_json::{json, Map, Value};

use crate::BlockOutcome;
use crate::StateSnapshot;

/// The state dump of SPEC §7 (v2: with `contracts`, each with its code
/// and its non-zero slots).
pub fn state_json(snapshot: &StateSnapshot) -> Value {
    let mut accounts = Map::new();
    for (key, a) in &snapshot.accounts {
        let balances: Map<String, Value> = a
            .balances
            .iter()
            .map(|(asset, v)| (asset.to_hex(), json!(v)))
            .collect();
        let multisig = match &a.multisig {
            None => Value::Null,
            Some(c) => json!({
                "threshold": c.threshold,
                "participants": c.participants.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
            }),
        };
        let records: Vec<Value> = a
            .energy
            .records
            .iter()
            .map(|r| {
                json!({"amount": r.amount, "energy": r.energy, "unlock_topoheight": r.unlock_topoheight})
            })
            .collect();
        accounts.insert(
            key.to_hex(),
            json!({
                "nonce": a.nonce,
                "balances": balances,
                "multisig": multisig,
                "energy": {"available": a.energy.available, "frozen": a.energy.frozen, "records": records},
            }),
        );
    }
    let contracts: Map<String, Value> = snapshot
        .contracts
        .iter()
        .map(|(id, c)| {
            let storage: Map<String, Value> = c
                .storage
                .iter()
                .map(|(slot, word)| (slot.to_hex(), json!(hex::encode(word))))
                .collect();
            (
                id.to_hex(),
                json!({"code": hex::encode(&c.code), "storage": storage}),
            )
        })
        .collect();
    json!({
        "topoheight": snapshot.topoheight,
        "emitted_supply": snapshot.meta.emitted_supply,
        "burned_supply": snapshot.meta.burned_supply,
        "accounts": accounts,
        "contracts": contracts,
    })
}

/// The state dump as pretty-printed canonical JSON text.
pub fn state_json_string(snapshot: &StateSnapshot) -> String {
    serde_json::to_string_pretty(&state_json(snapshot)).expect("JSON values always serialise")
}

/// One per-block results line of SPEC §7 (no newline).
pub fn results_line(outcome: &BlockOutcome) -> String {
    let results: Vec<Value> = outcome
        .results
        .iter()
        .map(|r| json!({"tx": r.hash.to_hex(), "status": r.status.code()}))
        .collect();
    json!({
        "topoheight": outcome.topoheight,
        "reward": outcome.reward,
        "fees": outcome.fees,
        "burned": outcome.burned,
        "results": results,
    })
    .to_string()
}
