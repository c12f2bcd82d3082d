use serde::{Deserialize, Serialize};

/// Settings of the proof store.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TraceConfig {
    /// gRPC listen address (port 0: any free port).
    pub listen: String,
}

impl Default for TraceConfig {
    fn default() -> Self {
        TraceConfig {
            listen: "127.0.0.1:7104".into(),
        }
    }
}
