use serde::{Deserialize, Serialize, de::DeserializeOwned};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::BusError;

/// The envelope every event travels in, as JSON, on the wire and in the outbox.
///
/// `kind` is also the routing key on the topic exchange (`connection.token_issued`,
/// `registry.sp.updated`). `id` is what consumers deduplicate on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    pub kind: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    pub source: String,
    pub payload: serde_json::Value,
}

/// A typed event payload: knows the kind (routing key) it is published under.
pub trait Payload: Serialize + DeserializeOwned {
    fn kind(&self) -> String;
}

impl Event {
    /// A new event with a random v4 id, occurring now.
    pub fn new(
        kind: impl Into<String>,
        source: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        Self::new_at(
            Uuid::new_v4(),
            OffsetDateTime::now_utc(),
            kind,
            source,
            payload,
        )
    }

    /// A new event whose id and time the caller chose (tests, injected clocks).
    pub fn new_at(
        id: Uuid,
        occurred_at: OffsetDateTime,
        kind: impl Into<String>,
        source: impl Into<String>,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            id,
            kind: kind.into(),
            occurred_at,
            source: source.into(),
            payload,
        }
    }

    /// Wraps a typed payload, with a random id, occurring now.
    pub fn from_payload<P: Payload>(
        source: impl Into<String>,
        payload: &P,
    ) -> Result<Self, BusError> {
        Self::from_payload_at(Uuid::new_v4(), OffsetDateTime::now_utc(), source, payload)
    }

    /// Wraps a typed payload with the id and time the caller chose.
    pub fn from_payload_at<P: Payload>(
        id: Uuid,
        occurred_at: OffsetDateTime,
        source: impl Into<String>,
        payload: &P,
    ) -> Result<Self, BusError> {
        Ok(Self::new_at(
            id,
            occurred_at,
            payload.kind(),
            source,
            serde_json::to_value(payload)?,
        ))
    }

    /// Reads the payload back as `P`, refusing one whose kind does not match the envelope's.
    pub fn payload<P: Payload>(&self) -> Result<P, BusError> {
        let payload: P = serde_json::from_value(self.payload.clone())?;
        let expected = payload.kind();
        if expected != self.kind {
            return Err(BusError::KindMismatch {
                expected,
                found: self.kind.clone(),
            });
        }
        Ok(payload)
    }

    /// The wire form.
    pub fn to_json(&self) -> Result<Vec<u8>, BusError> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Parses the wire form.
    pub fn from_json(bytes: &[u8]) -> Result<Self, BusError> {
        Ok(serde_json::from_slice(bytes)?)
    }

    /// Parses a message: one event, or a batch of them (a JSON array, see
    /// [`batch_routing_key`]) in the order they were queued.
    pub fn from_message(bytes: &[u8]) -> Result<Vec<Self>, BusError> {
        if bytes.trim_ascii_start().first() != Some(&b'[') {
            return Ok(vec![Self::from_json(bytes)?]);
        }
        let events: Vec<Self> = serde_json::from_slice(bytes)?;
        if events.is_empty() {
            return Err(BusError::EmptyBatch);
        }
        Ok(events)
    }
}

/// Families of events that may travel several to a message: connection records, the
/// bulk of the traffic, bound only as a whole (`connection.#`). A relay batch holding
/// several of them publishes them as one JSON array under `<family>.batch`, which every
/// binding of the family's wildcard receives; the broker then stores, routes and
/// delivers one message instead of one per record.
const BATCHED_FAMILIES: [&str; 1] = ["connection"];

/// The routing key a batch of events of `kind`'s family travels under, if its family
/// travels in batches.
pub fn batch_routing_key(kind: &str) -> Option<String> {
    let (family, _) = kind.split_once('.')?;
    BATCHED_FAMILIES
        .contains(&family)
        .then(|| format!("{family}.batch"))
}
