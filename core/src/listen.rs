//! TCP listeners with a backlog sized for reconnect storms.
//!
//! `TcpListener::bind` leaves the kernel's queue of connections waiting for `accept` at
//! 128 here. When thousands of clients reconnect at once (an edge restarted, a network
//! blip), a connection that finds the queue full has its handshake's last ACK dropped
//! and is retried by the kernel one, then three seconds later: long enough for the
//! client to miss its `connection_init` deadline and be closed with 4408. A deep queue
//! lets the accept loop catch up instead.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Connections the kernel may queue for `accept`; it caps this at
/// `net.core.somaxconn` (4,096 on current Linux).
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (with `SO_REUSEADDR`, as `TcpListener::bind` does) and listens with
/// [`LISTEN_BACKLOG`].
pub fn tcp_listener(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listens_on_an_ephemeral_port_and_refuses_a_taken_one() {
        let listener = tcp_listener(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let addr = listener.local_addr().expect("addr");
        assert_ne!(addr.port(), 0);
        let client = tokio::net::TcpStream::connect(addr);
        let (accepted, connected) = tokio::join!(listener.accept(), client);
        assert!(accepted.is_ok() && connected.is_ok());
        assert!(tcp_listener(addr).is_err(), "the port is taken");
    }
}
