use crate::consumer::HandlerError;

/// Everything that can go wrong on the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus configuration: `{field}` {reason}")]
    Config { field: &'static str, reason: String },

    #[error("event could not be encoded or decoded as JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("a batch message holds no event")]
    EmptyBatch,

    #[error("event of kind `{found}` read as a payload of kind `{expected}`")]
    KindMismatch { expected: String, found: String },

    #[error("PostgreSQL: {0}")]
    Postgres(#[from] tokio_postgres::Error),

    #[error("PostgreSQL pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),

    #[error("bus migrations failed: {0}")]
    Migration(#[from] refinery::Error),

    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),

    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(std::time::Duration),

    #[error("RabbitMQ refused {0} message(s) (nack); their events stay in the outbox")]
    Nacked(usize),

    #[error("RabbitMQ refused to keep a failed event for its next attempt; it is redelivered")]
    RetryRefused,

    #[error("RabbitMQ confirmed neither way {0} message(s); their events stay in the outbox")]
    ConfirmsLost(usize),

    #[error("the consumer stopped receiving deliveries")]
    ConsumerEnded,

    #[error("event handler failed: {0}")]
    Handler(HandlerError),
}
