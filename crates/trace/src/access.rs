//! Who may call each trace method: the proof store (subjects, addresses, records and their
//! proofs) is read by operators' investigation tools only; services write to it through
//! the bus. The latest checkpoint is public: the gateway serves it at
//! `/.well-known/relais-checkpoint`. Only an operator signs one on demand, or purges past the
//! retention now. Investigations:
//! an operator, or the gateway for a signed-in investigator (`investigators.rs`). A
//! person's own history: the gateway, with that person's token (`history.rs`).

use relais_runtime::Role;

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "GetConnection"
        | "ListConnections"
        | "VerifyChain"
        | "MakeCheckpoint"
        | "GetInclusionProof"
        | "GetConsistencyProof"
        | "ExportCase"
        | "Purge" => &[Role::Operator],
        "GetCheckpoint" => &[Role::Gateway, Role::Operator],
        // The gateway only with an investigator's access token, which trace checks.
        "SearchConnections" => &[Role::Operator, Role::Gateway],
        // A person's own history: the gateway only, with the person's token for the
        // account page, which trace checks; an operator investigates instead.
        "MyConnections" => &[Role::Gateway],
        _ => &[],
    }
}
