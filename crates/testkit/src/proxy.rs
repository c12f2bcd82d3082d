use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

/// A loopback TCP proxy the test controls: point a client at [`TcpProxy::addr`], then
/// [`TcpProxy::cut`] the link (open connections dropped, new ones closed at once) and
/// [`TcpProxy::restore`] it.
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

struct State {
    cut: bool,
    /// Cancelled to drop every connection opened since the last restore.
    links: CancellationToken,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(State {
            cut: false,
            links: CancellationToken::new(),
        }));
        let accept = tokio::spawn(accept_loop(listener, target, Arc::clone(&state)));
        Self {
            addr,
            state,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Drops every open connection and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.cut = true;
        state.links.cancel();
    }

    pub fn restore(&self) {
        let mut state = self.state.lock().expect("proxy state");
        state.cut = false;
        state.links = CancellationToken::new();
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
        if let Ok(state) = self.state.lock() {
            state.links.cancel();
        }
    }
}

async fn accept_loop(listener: TcpListener, target: SocketAddr, state: Arc<Mutex<State>>) {
    loop {
        let mut inbound = match listener.accept().await {
            Ok((inbound, _)) => inbound,
            Err(_) => {
                // Out of descriptors or similar: do not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let links = {
            let state = state.lock().expect("proxy state");
            (!state.cut).then(|| state.links.clone())
        };
        // While cut, an accepted connection is closed at once: the client sees the link fail.
        let Some(links) = links else { continue };
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                () = links.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
            }
        });
    }
}
