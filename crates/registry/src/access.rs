//! Who may call each registry method (the `relais-runtime` guard applies it to every call,
//! in-process ones included). Partners are read by the services that sign people in;
//! only an operator changes them.

use relais_runtime::Role;

pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "GetServiceProvider"
        | "AuthenticateClient"
        | "GetIdentityProvider"
        | "ListIdentityProviders" => &[Role::OidcFront, Role::IdpBridge],
        "SetServiceProviderStatus" | "SetIdentityProviderStatus" | "RotateClientSecret" => {
            &[Role::Operator]
        }
        "ListContacts" => &[Role::Support],
        // Trace: investigators of the REST investigation API.
        "FindPerson" | "BindPerson" => &[Role::Support, Role::Trace],
        _ => &[],
    }
}
