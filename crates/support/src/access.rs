//! Who may call each support method: the gateway's support API (callers proven by their
//! access token) and operators' tools. A caller named directly in the request (a contact
//! or staff member instead of a token) is taken from an operator only (see `grpc.rs`).

use relais_runtime::Role;

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "OpenTicket"
        | "GetTicket"
        | "ListTickets"
        | "Acknowledge"
        | "Comment"
        | "RequestInformation"
        | "SetSeverity"
        | "Assign"
        | "DeclareBlocking"
        | "Resolve"
        | "ConfirmResolution"
        | "AgreeToClose"
        | "GetIndicator"
        | "SubmitMail"
        | "ListQuarantinedMail" => &[Role::Gateway, Role::Operator],
        _ => &[],
    }
}
