//! Who may call each bridge method: only the front, which runs the sign-in.

use relais_runtime::Role;

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "StartLogin" | "FinishLogin" | "LogoutUrl" => &[Role::OidcFront],
        _ => &[],
    }
}
