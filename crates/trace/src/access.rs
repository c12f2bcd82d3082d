//! Who may call each trace method: the proof store (subjects, addresses) is read by
//! operators' investigation tools only; services write to it through the bus.

use relais_runtime::Role;

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "GetConnection" | "ListConnections" | "VerifyChain" => &[Role::Operator],
        _ => &[],
    }
}
