//! The Relais event bus: how services publish facts and react to other services' facts.
//!
//! It owns the event envelope ([`Event`]) and the typed payloads ([`events`]) — with the
//! partner kind and status every service speaks of, and their conversions to the stored
//! text and the gRPC enums — the bus
//! tables in each service's schema (`outbox`, `inbox`, migrated by [`migrate`] under
//! their own history table), [`enqueue`] to queue an event inside the caller's
//! transaction, the [`Relay`] that publishes the outbox to the RabbitMQ topic exchange
//! with publisher confirms, and the [`Consumer`] that hands each event once to an
//! [`EventHandler`] inside a transaction. Delivery is at least once; consumers are
//! idempotent on the event id. It must never publish an event outside the outbox (a
//! rolled-back change must not be announced), never commit the deletion of an outbox row before the
//! broker confirmed it, never log an event's payload (identity data), and never read or
//! write another service's tables: every query runs in the schema of the pool it is given.

mod amqp;
mod config;
mod consumer;
mod error;
mod event;
pub mod events;
pub mod people;
mod relay;
mod store;

pub use config::BusConfig;
pub use consumer::{
    Consumer, ConsumerHandle, ConsumerStats, EventHandler, HandlerError, delay_queue,
    spawn_broadcast_consumer, spawn_consumer, spawn_retrying_consumer,
};
pub use error::BusError;
pub use event::{Event, Payload, batch_routing_key};
pub use relay::{
    Outbox, Recorder, Relay, RelayHandle, RelayStats, recorder, spawn_relay, start_outbox,
};
pub use store::{
    MIGRATION_TABLE, change_if_with_events, change_with_events, change_with_filled_events, enqueue,
    enqueue_all, migrate, outbox_depth, purge_inbox,
};

// Re-exported so implementors of `EventHandler` need not depend on it themselves.
pub use async_trait::async_trait;
