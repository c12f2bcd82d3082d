//! The witness's process (`relais trace witness`): C2SP tlog-witness `POST /add-checkpoint`
//! over HTTP, the decision in `witness.rs`, and the state file where it keeps per origin
//! the last size and root it cosigned. The state is written (temporary file, fsync,
//! rename, fsync of the directory) before the cosignature is answered, under one lock, so
//! neither a race nor a restart lets it cosign a fork.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State as Shared};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use relais_runtime::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use crate::witness::{self, Refusal, State, Witness};

/// Requests larger are refused: a checkpoint and 63 hashes fit well within.
const BODY_LIMIT: usize = 64 * 1024;

/// Why the witness cannot start or keep its state.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("the state file {path}: {why}")]
    State { path: String, why: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn state_error(path: &Path, why: impl std::fmt::Display) -> WitnessError {
    WitnessError::State {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// The state kept in `path`; none yet (a first start) when the file does not exist.
pub fn load_state(path: &Path) -> Result<State, WitnessError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| state_error(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::new()),
        Err(e) => Err(state_error(path, e)),
    }
}

/// Replaces the state in `path` as one step: a crash leaves the old state or the new one.
fn store_state(path: &Path, state: &State) -> Result<(), WitnessError> {
    use std::io::Write;
    let text = serde_json::to_vec_pretty(state).map_err(|e| state_error(path, e))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| state_error(path, "not a file name"))?;
    let temp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    {
        let mut f = std::fs::File::create(&temp).map_err(|e| state_error(&temp, e))?;
        f.write_all(&text).map_err(|e| state_error(&temp, e))?;
        f.sync_all().map_err(|e| state_error(&temp, e))?;
    }
    std::fs::rename(&temp, path).map_err(|e| state_error(path, e))?;
    // The rename itself is durable once the directory is.
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| state_error(&dir, e))
}

struct Inner {
    witness: Witness,
    path: PathBuf,
    state: Mutex<State>,
}

/// A witness ready to serve: its decision, its state and where it keeps it.
#[derive(Clone)]
pub struct WitnessService {
    inner: Arc<Inner>,
}

impl WitnessService {
    /// The witness with the state kept in `path` (read now).
    pub fn open(witness: Witness, path: &Path) -> Result<Self, WitnessError> {
        let state = load_state(path)?;
        Ok(WitnessService {
            inner: Arc::new(Inner {
                witness,
                path: path.to_path_buf(),
                state: Mutex::new(state),
            }),
        })
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/add-checkpoint", post(add_checkpoint))
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(self.clone())
    }

    /// Serves on `listener` until `shutdown`.
    pub async fn serve(self, listener: TcpListener, shutdown: Shutdown) -> std::io::Result<()> {
        axum::serve(listener, self.router())
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    }

    /// Decides on one request body, and keeps the new state before it returns a cosignature.
    pub async fn handle(&self, body: &[u8]) -> Result<String, Refusal> {
        let request = witness::parse_request(body)?;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let now = u64::try_from(now).unwrap_or_default();
        // One lock over the check and the write: two requests never both move from one size.
        let mut state = self.inner.state.lock().await;
        let accepted = self.inner.witness.add_checkpoint(&request, &state, now)?;
        let mut next = state.clone();
        next.insert(accepted.origin.clone(), accepted.cosigned);
        let path = self.inner.path.clone();
        let written = tokio::task::spawn_blocking(move || store_state(&path, &next).map(|()| next))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
        match written {
            Ok(next) => *state = next,
            Err(why) => {
                tracing::error!(error = %why, "witness state not written: nothing cosigned");
                return Err(Refusal::Unavailable(why));
            }
        }
        tracing::info!(
            origin = %accepted.origin,
            size = accepted.cosigned.size,
            "checkpoint cosigned"
        );
        Ok(accepted.cosignature)
    }
}

async fn add_checkpoint(Shared(service): Shared<WitnessService>, body: Bytes) -> Response {
    match service.handle(&body).await {
        Ok(line) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            line,
        )
            .into_response(),
        Err(refusal) => {
            let status =
                StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            match refusal {
                Refusal::Conflict { size, .. } => (
                    status,
                    [(header::CONTENT_TYPE, "text/x.tlog.size")],
                    format!("{size}\n"),
                )
                    .into_response(),
                other => {
                    // A valid log signature on an inconsistent tree is evidence: logged.
                    if let Refusal::Inconsistent(why) = &other {
                        tracing::warn!(reason = %why, "inconsistent checkpoint refused");
                    }
                    (status, format!("{other}\n")).into_response()
                }
            }
        }
    }
}
