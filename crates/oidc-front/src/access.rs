//! Who may call each front method: the browser and SP endpoints only through the gateway
//! (it gives the source address), brute-force blocks, key rotation and account suspensions only by an operator, access tokens
//! checked for support's API and trace's investigations.

use relais_runtime::Role;

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "Discovery" | "Jwks" | "Authorize" | "ChooseIdp" | "ShowChooser" | "IdpCallback"
        | "Token" | "UserInfo" | "Revoke" | "Introspect" | "EndSession" | "ConfirmEndSession"
        | "LogoutCallback" => &[Role::Gateway],
        "ListBlocks" | "ClearBlock" | "RotateKeys" | "SuspendAccount" | "LiftAccountSuspension" => {
            &[Role::Operator]
        }
        "VerifyAccessToken" => &[Role::Support, Role::Trace],
        _ => &[],
    }
}
