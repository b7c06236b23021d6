//! A TCP proxy for fault injection: the service talks to its database through
//! it, and the test can take the database away and give it back.
//!
//! [`Proxy::cut`] closes every open connection and stops listening, so new
//! connections are refused (as when the database host goes down);
//! [`Proxy::restore`] listens on the same port again.

use std::mem;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;

use crate::helpers::POSTGRES_VAR;

pub struct Proxy {
    listen: SocketAddr,
    upstream: SocketAddr,
    tasks: Arc<Mutex<Tasks>>,
}

/// The accept loop (while listening) and one task per open connection.
#[derive(Default)]
struct Tasks {
    acceptor: Option<JoinHandle<()>>,
    connections: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy on `127.0.0.1:<free port>` forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = listen(([127, 0, 0, 1], 0).into()).expect("bind the proxy");
        let proxy = Proxy {
            listen: listener.local_addr().expect("proxy address"),
            upstream,
            tasks: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    /// A proxy to the PostgreSQL server of `LEADHOOK_TEST_POSTGRES_URL`;
    /// `None` when the variable is unset.
    pub async fn to_test_postgres() -> Option<Proxy> {
        let base = std::env::var(POSTGRES_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        let url = url::Url::parse(&base).expect("LEADHOOK_TEST_POSTGRES_URL is a URL");
        let host = url.host_str().unwrap_or("127.0.0.1");
        let upstream = (host, url.port().unwrap_or(5432))
            .to_socket_addrs()
            .expect("resolve the PostgreSQL host")
            .next()
            .expect("an address for the PostgreSQL host");
        Some(Proxy::start(upstream).await)
    }

    pub fn port(&self) -> u16 {
        self.listen.port()
    }

    /// `database_url` (a PostgreSQL URL) with its host and port replaced by
    /// this proxy's.
    pub fn route(&self, database_url: &str) -> String {
        let mut url = url::Url::parse(database_url).expect("a database URL");
        url.set_host(Some("127.0.0.1")).expect("set host");
        url.set_port(Some(self.port())).expect("set port");
        url.to_string()
    }

    /// Stops listening (new connections are refused) and closes every open
    /// connection, both ways. Done when this returns.
    pub async fn cut(&self) {
        // The acceptor first, so that no connection is added after the
        // list is taken.
        let acceptor = self.lock().acceptor.take();
        if let Some(acceptor) = acceptor {
            acceptor.abort();
            let _ = acceptor.await;
        }
        let connections = mem::take(&mut self.lock().connections);
        for connection in &connections {
            connection.abort();
        }
        for connection in connections {
            let _ = connection.await;
        }
    }

    /// Listens on the same port again.
    pub async fn restore(&self) {
        let mut attempts = 0;
        let listener = loop {
            match listen(self.listen) {
                Ok(listener) => break listener,
                Err(e) if attempts < 100 => {
                    attempts += 1;
                    if attempts == 1 {
                        eprintln!("proxy: rebinding {} failed ({e}); retrying", self.listen);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("proxy: cannot listen on {} again: {e}", self.listen),
            }
        };
        self.serve(listener);
    }

    fn serve(&self, listener: TcpListener) {
        let tasks = self.tasks.clone();
        let upstream = self.upstream;
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                // No await between spawn and registration: `cut` aborts the
                // acceptor at an await point, so every connection is listed.
                let connection = tokio::spawn(forward(inbound, upstream));
                let mut tasks = tasks.lock().expect("proxy tasks");
                tasks.connections.retain(|c| !c.is_finished());
                tasks.connections.push(connection);
            }
        });
        self.lock().acceptor = Some(acceptor);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tasks> {
        self.tasks.lock().expect("proxy tasks")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let mut tasks = self.lock();
        if let Some(acceptor) = tasks.acceptor.take() {
            acceptor.abort();
        }
        for connection in tasks.connections.drain(..) {
            connection.abort();
        }
    }
}

/// A listener that can take over its port again right after `cut` (the
/// closed connections leave it in TIME_WAIT).
fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(128)
}

/// Copies both ways until either side closes; dropping the task (on `cut`)
/// closes both sockets.
async fn forward(mut inbound: TcpStream, upstream: SocketAddr) {
    let Ok(mut outbound) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
}
