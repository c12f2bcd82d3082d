//! gRPC contracts between Relais services, generated from the `.proto` files in
//! `proto/relais/<service>/v1/`. This crate holds generated code only: no logic.

#![allow(clippy::all, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod registry {
    pub mod v1 {
        tonic::include_proto!("relais.registry.v1");
    }
}

pub mod oidc_front {
    pub mod v1 {
        tonic::include_proto!("relais.oidc_front.v1");
    }
}

pub mod idp_bridge {
    pub mod v1 {
        tonic::include_proto!("relais.idp_bridge.v1");
    }
}

pub mod trace {
    pub mod v1 {
        tonic::include_proto!("relais.trace.v1");
    }
}

pub mod support {
    pub mod v1 {
        tonic::include_proto!("relais.support.v1");
    }
}
