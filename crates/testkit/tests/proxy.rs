use std::net::SocketAddr;

use relais_testkit::TcpProxy;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Echoes every byte back, connection after connection.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    addr
}

/// True if a byte sent through `stream` comes back.
async fn echoes(stream: &mut TcpStream) -> bool {
    if stream.write_all(b"x").await.is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte).await, Ok(1) if byte == *b"x")
}

#[tokio::test]
async fn a_cut_drops_open_links_and_refuses_new_ones_until_restored() {
    let proxy = TcpProxy::start(echo_server().await).await;
    let mut open = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(echoes(&mut open).await);

    proxy.cut();
    assert!(!echoes(&mut open).await, "an open link survived the cut");
    // The listener still accepts, but closes at once: the client sees the link fail.
    let mut during = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(!echoes(&mut during).await, "a new link got through the cut");

    proxy.restore();
    let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
    assert!(echoes(&mut after).await);
}
