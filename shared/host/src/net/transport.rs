//! One mutually-authenticated, framed byte channel between an edge and the hub, over QUIC or, where UDP is
//! blocked, TLS over TCP on the same port number.
//!
//! Wire contract (both paths):
//! 1. TLS 1.3 handshake with ALPN `datum-sync/2` or `datum-sync/1` (see [`super::tls`]): the server picks the
//!    newest the client offers and refuses a connection that negotiates neither; [`Conn::protocol`] says which.
//! 2. QUIC: the client opens one bidirectional stream; TCP: the TLS stream itself.
//! 3. The client writes the 4-byte preamble `DSY?` at once (a QUIC stream only becomes visible to the
//!    server's `accept_bi` when data arrives), the server answers `DSY!` once it has accepted the peer. So
//!    [`connect`] returns only after the hub has accepted our certificate: in TLS 1.3 the client finishes its
//!    handshake before the server has judged the client certificate, and without this round trip a refusal
//!    would surface later as a read error instead of [`ConnectError::NotAuthorized`].
//! 4. Then frames in both directions: a `u32` big-endian length and that many payload bytes, at most
//!    [`MAX_FRAME`]; the length is checked before anything is allocated. Who speaks first after the preamble
//!    is the session protocol's business.
//!
//! A clean end of stream (QUIC FIN, TLS close_notify) reads as `Ok(None)`; anything else is an error.

use std::future::pending;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{ConnectionError, Endpoint, VarInt};
use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use datum_shared::sync::wire::version_of_alpn;

use super::tls::HUB_SERVER_NAME;

/// The largest frame payload either side sends or accepts.
pub const MAX_FRAME: usize = 8 << 20;
/// How long the server gives a peer to complete TLS and the preamble.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// QUIC keep-alive: well inside the idle timeout (and the 20-30 s after which NAT and firewall UDP state
/// often expires), so a live but busy peer is never taken for a dead one.
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// A peer (QUIC) or a connection (TCP) silent this long is gone: three missed QUIC keep-alives; on TCP the
/// keep-alive probes ([`TCP_KEEPALIVE_IDLE`] plus [`TCP_KEEPALIVE_PROBES`] × [`TCP_KEEPALIVE_INTERVAL`]) and the
/// user timeout for unacknowledged data. Both sides offer it; QUIC uses the smaller of the two offers.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP: idle time before the first keep-alive probe.
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(4);
/// TCP: time between unanswered keep-alive probes.
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
/// TCP: unanswered probes after which the kernel drops the connection.
pub const TCP_KEEPALIVE_PROBES: u32 = 3;
/// Once a frame has begun, its remaining bytes must keep arriving: a frame stalled this long means the peer
/// or the path is gone (a peer that merely has nothing to say sends no frame at all, which the session
/// layer judges).
pub const FRAME_STALL: Duration = Duration::from_secs(10);
/// QUIC per-stream receive window; the default (≈1.25 MB) caps bulk transfer on links with any latency.
pub const STREAM_RECEIVE_WINDOW: u32 = 16 << 20;

const PREAMBLE_CLIENT: [u8; 4] = *b"DSY?";
const PREAMBLE_SERVER: [u8; 4] = *b"DSY!";

/// Which path a connection took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Quic,
    Tcp,
}

/// Which paths [`connect`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// QUIC first; TLS over TCP if QUIC fails or does not answer within `quic_timeout` (TCP first with
    /// [`ConnectOpts::prefer_tcp`]).
    #[default]
    Auto,
    QuicOnly,
    TcpOnly,
}

#[derive(Debug, Clone)]
pub struct ConnectOpts {
    pub mode: Mode,
    /// Bound on the whole QUIC attempt (handshake and preamble) before falling back to TCP.
    pub quic_timeout: Duration,
    /// Bound on the whole TCP attempt (connect, handshake and preamble).
    pub tcp_timeout: Duration,
    /// Turn off UDP segmentation offload, for kernels and virtual NICs that misreport it (EIO on send).
    pub disable_gso: bool,
    /// [`Mode::Auto`] only: dial TCP first and QUIC only if TCP fails, for a hub whose QUIC recently failed
    /// (UDP blocked on the way), so a pass does not pay `quic_timeout` each time.
    pub prefer_tcp: bool,
}

impl Default for ConnectOpts {
    fn default() -> Self {
        ConnectOpts {
            mode: Mode::Auto,
            quic_timeout: Duration::from_secs(3),
            tcp_timeout: Duration::from_secs(10),
            disable_gso: false,
            prefer_tcp: false,
        }
    }
}

/// Errors of an established connection, of the server side of a handshake, and of binding.
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("frame of {len} bytes exceeds the limit of {MAX_FRAME}")]
    FrameTooLarge { len: usize },
    #[error("connection ended in the middle of a frame")]
    Truncated,
    #[error("peer stopped sending in the middle of a frame for {0:?}")]
    Stalled(Duration),
    #[error("connection closed by peer (code {code}): {reason}")]
    ClosedByPeer { code: u64, reason: String },
    #[error("connection closed locally")]
    LocallyClosed,
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    #[error("handshake timed out")]
    HandshakeTimeout,
    #[error("handshake failed: {0}")]
    Handshake(String),
    #[error("peer did not negotiate alpn datum-sync/2 or datum-sync/1")]
    NoAlpn,
    #[error("peer sent an unexpected preamble")]
    BadPreamble,
    #[error("bind {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("listener needs udp or tcp enabled")]
    NothingToBind,
    #[error("quic configuration: {0}")]
    QuicConfig(String),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// Why [`connect`] failed, sorted by what the caller should do about it.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// Network trouble or the hub is down: retry later with backoff. Being offline is normal.
    #[error("hub unreachable: {0}")]
    Unreachable(String),
    /// The hub refused our certificate (TLS alert, QUIC crypto close): do not retry hot; the node may need
    /// re-enrollment or has been revoked.
    #[error("hub refused our certificate: {0}")]
    NotAuthorized(String),
    /// We refused the hub's certificate (wrong pinned fingerprint, other CA, expired): a person must look.
    #[error("hub certificate not trusted: {0}")]
    HubNotTrusted(String),
    #[error("connect failed: {0}")]
    Other(String),
}

/// Options for [`Listener::bind_with`].
#[derive(Debug, Clone)]
pub struct ListenOpts {
    pub udp: bool,
    pub tcp: bool,
    pub disable_gso: bool,
}

/// QUIC (UDP) and TLS-over-TCP on the same port number.
pub struct Listener {
    quic: Option<Endpoint>,
    tcp: Option<TcpListener>,
    tls_acceptor: TlsAcceptor,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("local_addr", &self.local_addr)
            .field("udp", &self.quic.is_some())
            .field("tcp", &self.tcp.is_some())
            .finish()
    }
}

impl Listener {
    /// Binds QUIC (if `udp`) and TLS over TCP (if `tcp`) on the same port number. With port 0 it picks a UDP
    /// port, then binds TCP on the same number, retrying a few times if that TCP port is taken.
    pub async fn bind(
        addr: SocketAddr,
        server_config: Arc<rustls::ServerConfig>,
        udp: bool,
        tcp: bool,
    ) -> Result<Listener, TransportError> {
        Self::bind_with(addr, server_config, &ListenOpts { udp, tcp, disable_gso: false }).await
    }

    pub async fn bind_with(
        addr: SocketAddr,
        server_config: Arc<rustls::ServerConfig>,
        opts: &ListenOpts,
    ) -> Result<Listener, TransportError> {
        if !opts.udp && !opts.tcp {
            return Err(TransportError::NothingToBind);
        }
        let tls_acceptor = TlsAcceptor::from(server_config.clone());
        if !opts.udp {
            let tcp = TcpListener::bind(addr).await.map_err(|source| TransportError::Bind { addr, source })?;
            let local_addr = tcp.local_addr()?;
            return Ok(Listener { quic: None, tcp: Some(tcp), tls_acceptor, local_addr });
        }
        let quic_config = quic_server_config(&server_config, opts.disable_gso)?;
        let n_attempts = if addr.port() == 0 { 8 } else { 1 };
        let mut last_error = None;
        for _ in 0..n_attempts {
            let endpoint =
                Endpoint::server(quic_config.clone(), addr).map_err(|source| TransportError::Bind { addr, source })?;
            let local_addr = endpoint.local_addr()?;
            if !opts.tcp {
                return Ok(Listener { quic: Some(endpoint), tcp: None, tls_acceptor, local_addr });
            }
            match TcpListener::bind(local_addr).await {
                Ok(tcp) => return Ok(Listener { quic: Some(endpoint), tcp: Some(tcp), tls_acceptor, local_addr }),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse && addr.port() == 0 => {
                    // Someone holds this number on TCP; let the OS pick another UDP port.
                    endpoint.close(VarInt::from_u32(0), b"");
                    last_error = Some(TransportError::Bind { addr: local_addr, source: e });
                }
                Err(source) => return Err(TransportError::Bind { addr: local_addr, source }),
            }
        }
        Err(last_error.unwrap_or(TransportError::NothingToBind))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Next incoming connection attempt (QUIC or TCP). The caller spawns a task per attempt and calls
    /// [`Incoming::handshake`] there, so one slow peer does not block accepting others. `None` once the
    /// listener is closed.
    pub async fn accept(&self) -> Option<Incoming> {
        loop {
            tokio::select! {
                Some(incoming) = next_quic(&self.quic) => {
                    let remote = incoming.remote_address();
                    return Some(Incoming { remote, kind: IncomingKind::Quic(Box::new(incoming)) });
                }
                accepted = next_tcp(&self.tcp) => match accepted {
                    Ok((stream, remote)) => {
                        let acceptor = self.tls_acceptor.clone();
                        return Some(Incoming { remote, kind: IncomingKind::Tcp { stream, acceptor } });
                    }
                    Err(e) => {
                        // Out of file descriptors and the like: back off briefly instead of spinning.
                        tracing::warn!(error = %e, "tcp accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                else => return None,
            }
        }
    }

    /// Stops accepting and closes live QUIC connections (TCP connections live until their owners drop them).
    pub fn close(&self) {
        if let Some(endpoint) = &self.quic {
            endpoint.close(VarInt::from_u32(0), b"hub shutting down");
        }
    }
}

async fn next_quic(endpoint: &Option<Endpoint>) -> Option<quinn::Incoming> {
    match endpoint {
        Some(endpoint) => endpoint.accept().await,
        None => pending().await,
    }
}

async fn next_tcp(listener: &Option<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => pending().await,
    }
}

/// A connection attempt accepted by the [`Listener`], not yet authenticated.
pub struct Incoming {
    remote: SocketAddr,
    kind: IncomingKind,
}

enum IncomingKind {
    Quic(Box<quinn::Incoming>),
    Tcp { stream: TcpStream, acceptor: TlsAcceptor },
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming").field("remote", &self.remote).field("via", &self.via()).finish()
    }
}

impl Incoming {
    pub fn remote_addr(&self) -> SocketAddr {
        self.remote
    }

    pub fn via(&self) -> Via {
        match self.kind {
            IncomingKind::Quic(_) => Via::Quic,
            IncomingKind::Tcp { .. } => Via::Tcp,
        }
    }

    /// TLS handshake, ALPN check and preamble, bounded by [`HANDSHAKE_TIMEOUT`].
    pub async fn handshake(self) -> Result<Conn, TransportError> {
        timeout(HANDSHAKE_TIMEOUT, self.handshake_unbounded()).await.map_err(|_| TransportError::HandshakeTimeout)?
    }

    async fn handshake_unbounded(self) -> Result<Conn, TransportError> {
        let remote = self.remote;
        match self.kind {
            IncomingKind::Quic(incoming) => {
                let connecting = (*incoming).accept().map_err(|e| TransportError::Handshake(e.to_string()))?;
                let connection = connecting.await.map_err(|e| TransportError::Handshake(e.to_string()))?;
                let Some(protocol) = quic_alpn(&connection).as_deref().and_then(version_of_alpn) else {
                    connection.close(VarInt::from_u32(CLOSE_NO_ALPN), b"alpn datum-sync/2 or /1 required");
                    return Err(TransportError::NoAlpn);
                };
                let (mut send, mut recv) = connection.accept_bi().await.map_err(connection_error)?;
                expect_preamble(&mut recv, PREAMBLE_CLIENT).await?;
                AsyncWriteExt::write_all(&mut send, &PREAMBLE_SERVER).await.map_err(io_error)?;
                Ok(Conn::from_quic(connection, None, send, recv, remote, protocol))
            }
            IncomingKind::Tcp { stream, acceptor } => {
                stream.set_nodelay(true)?;
                detect_dead_peer(&stream)?;
                let (stream, socket_for_closer) = dup_for_closer(stream)?;
                let mut tls = acceptor.accept(stream).await.map_err(|e| TransportError::Handshake(e.to_string()))?;
                let (_, session) = tls.get_ref();
                let Some(protocol) = session.alpn_protocol().and_then(version_of_alpn) else {
                    // Best effort: a close_notify, then the socket goes.
                    let _ = tls.shutdown().await;
                    return Err(TransportError::NoAlpn);
                };
                let peer_chain = session.peer_certificates().map(chain_to_vecs);
                expect_preamble(&mut tls, PREAMBLE_CLIENT).await?;
                tls.write_all(&PREAMBLE_SERVER).await.map_err(io_error)?;
                tls.flush().await.map_err(io_error)?;
                Ok(Conn::from_tcp(
                    tokio_rustls::TlsStream::Server(tls),
                    peer_chain,
                    socket_for_closer,
                    remote,
                    protocol,
                ))
            }
        }
    }
}

/// Application close code the server uses when the peer did not negotiate our ALPN.
pub const CLOSE_NO_ALPN: u32 = 0x1;

/// Connects to the hub at `addr` (`host:port`) per `opts.mode` and completes the preamble, so a returned
/// `Conn` has been accepted by the hub at the TLS layer.
pub async fn connect(
    addr: &str,
    client_config: Arc<rustls::ClientConfig>,
    opts: &ConnectOpts,
) -> Result<Conn, ConnectError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| ConnectError::Unreachable(format!("resolve {addr}: {e}")))?
        .collect();
    let Some(&first) = addrs.first() else {
        return Err(ConnectError::Unreachable(format!("resolve {addr}: no address")));
    };
    let quic_attempt = || async {
        timeout(opts.quic_timeout, connect_quic(first, client_config.clone(), opts.disable_gso)).await.unwrap_or_else(
            |_| Err(ConnectError::Unreachable(format!("quic: no answer within {:?}", opts.quic_timeout))),
        )
    };
    let tcp_attempt = || async {
        timeout(opts.tcp_timeout, connect_tcp(&addrs, client_config.clone()))
            .await
            .unwrap_or_else(|_| Err(ConnectError::Unreachable(format!("tcp: no answer within {:?}", opts.tcp_timeout))))
    };
    match opts.mode {
        Mode::QuicOnly => quic_attempt().await,
        Mode::TcpOnly => tcp_attempt().await,
        Mode::Auto if opts.prefer_tcp => {
            let tcp_error = match tcp_attempt().await {
                Ok(conn) => return Ok(conn),
                Err(e @ (ConnectError::NotAuthorized(_) | ConnectError::HubNotTrusted(_))) => return Err(e),
                Err(e) => e,
            };
            tracing::debug!(error = %tcp_error, "tcp failed, trying quic");
            match quic_attempt().await {
                Ok(conn) => Ok(conn),
                Err(ConnectError::Unreachable(quic)) => Err(ConnectError::Unreachable(format!("{tcp_error}; {quic}"))),
                Err(e) => Err(e),
            }
        }
        Mode::Auto => {
            let started = Instant::now();
            let quic_error = match quic_attempt().await {
                Ok(conn) => return Ok(conn),
                // A verdict on certificates is the same over TCP; trying again there would only hide it.
                Err(e @ (ConnectError::NotAuthorized(_) | ConnectError::HubNotTrusted(_))) => return Err(e),
                Err(e) => e,
            };
            tracing::debug!(error = %quic_error, elapsed = ?started.elapsed(), "quic failed, trying tcp");
            match tcp_attempt().await {
                Ok(mut conn) => {
                    conn.quic_failed = Some(quic_error.to_string());
                    Ok(conn)
                }
                Err(ConnectError::Unreachable(tcp)) => {
                    Err(ConnectError::Unreachable(format!("{quic_error}; tcp: {tcp}")))
                }
                Err(ConnectError::Other(tcp)) => Err(ConnectError::Other(format!("{quic_error}; tcp: {tcp}"))),
                Err(e) => Err(e),
            }
        }
    }
}

async fn connect_quic(
    addr: SocketAddr,
    client_config: Arc<rustls::ClientConfig>,
    disable_gso: bool,
) -> Result<Conn, ConnectError> {
    let bind: SocketAddr =
        if addr.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }.parse().expect("a literal socket address parses");
    let endpoint = Endpoint::client(bind).map_err(|e| ConnectError::Other(format!("quic: bind udp: {e}")))?;
    let config = quic_client_config(client_config, disable_gso).map_err(|e| ConnectError::Other(e.to_string()))?;
    let connecting =
        endpoint.connect_with(config, addr, HUB_SERVER_NAME).map_err(|e| ConnectError::Other(format!("quic: {e}")))?;
    let connection = connecting.await.map_err(classify_quic)?;
    let protocol = quic_alpn(&connection)
        .as_deref()
        .and_then(version_of_alpn)
        .ok_or_else(|| ConnectError::Other("quic: the hub negotiated no datum-sync version".into()))?;
    let (mut send, mut recv) = connection.open_bi().await.map_err(classify_quic)?;
    send.write_all(&PREAMBLE_CLIENT).await.map_err(classify_quic_write)?;
    let mut answer = [0u8; 4];
    match recv.read_exact(&mut answer).await {
        Ok(()) if answer == PREAMBLE_SERVER => {}
        Ok(()) => return Err(ConnectError::Other("quic: hub sent an unexpected preamble".into())),
        Err(quinn::ReadExactError::ReadError(quinn::ReadError::ConnectionLost(e))) => return Err(classify_quic(e)),
        Err(e) => return Err(ConnectError::Other(format!("quic: {e}"))),
    }
    Ok(Conn::from_quic(connection, Some(endpoint), send, recv, addr, protocol))
}

async fn connect_tcp(addrs: &[SocketAddr], client_config: Arc<rustls::ClientConfig>) -> Result<Conn, ConnectError> {
    let stream = TcpStream::connect(addrs).await.map_err(|e| ConnectError::Unreachable(format!("tcp: {e}")))?;
    let remote = stream.peer_addr().map_err(|e| ConnectError::Unreachable(format!("tcp: {e}")))?;
    stream.set_nodelay(true).map_err(|e| ConnectError::Other(format!("tcp: {e}")))?;
    detect_dead_peer(&stream).map_err(|e| ConnectError::Other(format!("tcp: {e}")))?;
    let (stream, socket_for_closer) = dup_for_closer(stream).map_err(|e| ConnectError::Other(format!("tcp: {e}")))?;
    let server_name = ServerName::try_from(HUB_SERVER_NAME).expect("datum-hub is a valid dns name");
    let mut tls = TlsConnector::from(client_config).connect(server_name, stream).await.map_err(classify_tcp)?;
    let protocol = tls
        .get_ref()
        .1
        .alpn_protocol()
        .and_then(version_of_alpn)
        .ok_or_else(|| ConnectError::Other("tcp: the hub negotiated no datum-sync version".into()))?;
    tls.write_all(&PREAMBLE_CLIENT).await.map_err(classify_tcp)?;
    tls.flush().await.map_err(classify_tcp)?;
    let mut answer = [0u8; 4];
    match tls.read_exact(&mut answer).await {
        Ok(_) if answer == PREAMBLE_SERVER => {}
        Ok(_) => return Err(ConnectError::Other("tcp: hub sent an unexpected preamble".into())),
        Err(e) => return Err(classify_tcp(e)),
    }
    let peer_chain = tls.get_ref().1.peer_certificates().map(chain_to_vecs);
    Ok(Conn::from_tcp(tokio_rustls::TlsStream::Client(tls), peer_chain, socket_for_closer, remote, protocol))
}

/// The QUIC transport settings both sides use.
pub fn transport_config(disable_gso: bool) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport
        .max_idle_timeout(Some(quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("10 s fits a quic idle timeout")));
    transport.stream_receive_window(VarInt::from_u32(STREAM_RECEIVE_WINDOW));
    transport.send_window(u64::from(STREAM_RECEIVE_WINDOW) * 2);
    // One stream per connection: the peer needs no more than that.
    transport.max_concurrent_bidi_streams(VarInt::from_u32(1));
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    transport.enable_segmentation_offload(!disable_gso);
    Arc::new(transport)
}

/// quinn's server config wrapping our rustls config. It keeps the rustls `max_early_data_size` (0), so 0-RTT
/// stays off; unlike `quinn::ServerConfig::with_single_cert`, which turns it on.
pub fn quic_server_config(
    server_config: &Arc<rustls::ServerConfig>,
    disable_gso: bool,
) -> Result<quinn::ServerConfig, TransportError> {
    let crypto =
        QuicServerConfig::try_from(server_config.clone()).map_err(|e| TransportError::QuicConfig(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport_config(disable_gso));
    Ok(config)
}

pub fn quic_client_config(
    client_config: Arc<rustls::ClientConfig>,
    disable_gso: bool,
) -> Result<quinn::ClientConfig, TransportError> {
    let crypto = QuicClientConfig::try_from(client_config).map_err(|e| TransportError::QuicConfig(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport_config(disable_gso));
    Ok(config)
}

/// An authenticated connection, QUIC or TCP; [`Conn::split`] it to send and receive from separate tasks.
pub struct Conn {
    pub via: Via,
    pub remote: SocketAddr,
    /// The peer's certificate chain (DER, leaf first) if it presented one.
    pub peer_chain: Option<Vec<Vec<u8>>>,
    /// [`Mode::Auto`]: why QUIC failed before this TCP connection was made, if it was tried first.
    pub quic_failed: Option<String>,
    /// The `datum-sync` version the handshake negotiated (ALPN), for the session's `Hello`.
    pub protocol: u32,
    sender: FrameSender,
    receiver: FrameReceiver,
    closer: Closer,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("via", &self.via)
            .field("protocol", &self.protocol)
            .field("remote", &self.remote)
            .field("peer_presented_cert", &self.peer_chain.is_some())
            .finish()
    }
}

impl Conn {
    pub fn split(self) -> (FrameSender, FrameReceiver, Closer) {
        (self.sender, self.receiver, self.closer)
    }

    pub fn closer(&self) -> Closer {
        self.closer.clone()
    }

    fn from_quic(
        connection: quinn::Connection,
        endpoint: Option<Endpoint>,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
        remote: SocketAddr,
        protocol: u32,
    ) -> Conn {
        let peer_chain = quic_peer_chain(&connection);
        // A client endpoint lives as long as any part of its one connection.
        let keep = Arc::new(endpoint);
        Conn {
            via: Via::Quic,
            remote,
            peer_chain,
            quic_failed: None,
            protocol,
            sender: FrameSender { writer: Box::new(send), _endpoint: keep.clone() },
            receiver: FrameReceiver { reader: Box::new(recv), _endpoint: keep.clone() },
            closer: Closer { kind: CloserKind::Quic(connection), _endpoint: keep },
        }
    }

    fn from_tcp(
        tls: tokio_rustls::TlsStream<TcpStream>,
        peer_chain: Option<Vec<Vec<u8>>>,
        socket_for_closer: std::net::TcpStream,
        remote: SocketAddr,
        protocol: u32,
    ) -> Conn {
        let (reader, writer) = tokio::io::split(tls);
        let keep = Arc::new(None);
        Conn {
            via: Via::Tcp,
            remote,
            peer_chain,
            quic_failed: None,
            protocol,
            sender: FrameSender { writer: Box::new(writer), _endpoint: keep.clone() },
            receiver: FrameReceiver { reader: Box::new(reader), _endpoint: keep.clone() },
            closer: Closer { kind: CloserKind::Tcp(Arc::new(socket_for_closer)), _endpoint: keep },
        }
    }
}

/// The sending half: whole frames, in order.
pub struct FrameSender {
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    _endpoint: Arc<Option<Endpoint>>,
}

impl std::fmt::Debug for FrameSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameSender").finish_non_exhaustive()
    }
}

impl FrameSender {
    /// Sends one frame; refuses (without sending anything) a frame over [`MAX_FRAME`].
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), TransportError> {
        write_frame(&mut self.writer, frame).await
    }

    /// Ends our direction cleanly (QUIC FIN / TLS close_notify): the peer's `recv` then returns `Ok(None)`.
    pub async fn finish(&mut self) {
        // If the connection is already gone there is nothing left to finish.
        let _ = self.writer.shutdown().await;
    }
}

/// The receiving half.
pub struct FrameReceiver {
    reader: Box<dyn AsyncRead + Send + Unpin>,
    _endpoint: Arc<Option<Endpoint>>,
}

impl std::fmt::Debug for FrameReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReceiver").finish_non_exhaustive()
    }
}

impl FrameReceiver {
    /// The next frame; `Ok(None)` on a clean end of stream. A length over [`MAX_FRAME`] is refused before
    /// any allocation.
    pub async fn recv(&mut self) -> Result<Option<Vec<u8>>, TransportError> {
        read_frame(&mut self.reader).await
    }
}

/// Closes the connection from any task (the hub cuts a revoked edge at once); `recv` on both sides then ends.
/// Over QUIC the peer sees `ClosedByPeer { code, reason }`; over TCP the socket is shut down, which the peer
/// sees as a lost connection (TCP carries no code or reason).
#[derive(Clone)]
pub struct Closer {
    kind: CloserKind,
    _endpoint: Arc<Option<Endpoint>>,
}

#[derive(Clone)]
enum CloserKind {
    Quic(quinn::Connection),
    Tcp(Arc<std::net::TcpStream>),
}

impl std::fmt::Debug for Closer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Closer").finish_non_exhaustive()
    }
}

impl Closer {
    pub fn close(&self, code: u32, reason: &str) {
        match &self.kind {
            CloserKind::Quic(connection) => connection.close(VarInt::from_u32(code), reason.as_bytes()),
            CloserKind::Tcp(socket) => {
                // Shutting down a duplicate of the socket's descriptor ends the connection for both halves,
                // wherever they are, without waiting for a writer that may be stuck on a full window.
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
    }
}

/// Writes one frame: length prefix and payload.
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(writer: &mut W, frame: &[u8]) -> Result<(), TransportError> {
    if frame.len() > MAX_FRAME {
        return Err(TransportError::FrameTooLarge { len: frame.len() });
    }
    let len = u32::try_from(frame.len()).expect("MAX_FRAME fits in u32");
    if frame.len() <= 16 * 1024 {
        // One write, so a small frame goes out as one TLS record / QUIC frame.
        let mut buf = Vec::with_capacity(4 + frame.len());
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(frame);
        writer.write_all(&buf).await.map_err(io_error)?;
    } else {
        writer.write_all(&len.to_be_bytes()).await.map_err(io_error)?;
        writer.write_all(frame).await.map_err(io_error)?;
    }
    writer.flush().await.map_err(io_error)
}

/// Reads one frame; `Ok(None)` on a clean end of stream before a length prefix.
pub async fn read_frame<R: AsyncRead + Unpin + ?Sized>(reader: &mut R) -> Result<Option<Vec<u8>>, TransportError> {
    let mut len_buf = [0u8; 4];
    let mut n_filled = 0;
    while n_filled < len_buf.len() {
        let n = reader.read(&mut len_buf[n_filled..]).await.map_err(io_error)?;
        if n == 0 {
            return if n_filled == 0 { Ok(None) } else { Err(TransportError::Truncated) };
        }
        n_filled += n;
    }
    let len = u32::from_be_bytes(len_buf) as usize;
    if len > MAX_FRAME {
        return Err(TransportError::FrameTooLarge { len });
    }
    let mut frame = vec![0u8; len];
    let mut n_read = 0;
    while n_read < len {
        // Progress, not the whole frame, is bounded: an 8 MiB frame may take long on a slow link.
        let n = match timeout(FRAME_STALL, reader.read(&mut frame[n_read..])).await {
            Err(_) => return Err(TransportError::Stalled(FRAME_STALL)),
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(TransportError::Truncated),
            Ok(Err(e)) => return Err(io_error(e)),
        };
        if n == 0 {
            // A FIN, a close_notify or a bare TCP close inside a frame: the frame is cut either way.
            return Err(TransportError::Truncated);
        }
        n_read += n;
    }
    Ok(Some(frame))
}

async fn expect_preamble<R: AsyncRead + Unpin>(reader: &mut R, expected: [u8; 4]) -> Result<(), TransportError> {
    let mut got = [0u8; 4];
    reader.read_exact(&mut got).await.map_err(io_error)?;
    if got == expected {
        Ok(())
    } else {
        Err(TransportError::BadPreamble)
    }
}

/// TCP's own dead-peer detection, bounded by about [`IDLE_TIMEOUT`]: keep-alive probes while nothing is in
/// flight, and a user timeout while sent data stays unacknowledged (without it the kernel retransmits for
/// about 15 minutes). A killed peer process is seen at once (its kernel resets the connection); these cover
/// a peer whose host or path died.
fn detect_dead_peer(stream: &TcpStream) -> io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_IDLE)
        .with_interval(TCP_KEEPALIVE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_PROBES);
    socket.set_tcp_keepalive(&keepalive)?;
    socket.set_tcp_user_timeout(Some(IDLE_TIMEOUT))
}

/// A duplicate of the socket's descriptor for [`Closer`], taken before TLS owns the stream.
fn dup_for_closer(stream: TcpStream) -> io::Result<(TcpStream, std::net::TcpStream)> {
    let std_stream = stream.into_std()?;
    let duplicate = std_stream.try_clone()?;
    Ok((TcpStream::from_std(std_stream)?, duplicate))
}

fn quic_alpn(connection: &quinn::Connection) -> Option<Vec<u8>> {
    connection.handshake_data()?.downcast::<quinn::crypto::rustls::HandshakeData>().ok()?.protocol
}

fn quic_peer_chain(connection: &quinn::Connection) -> Option<Vec<Vec<u8>>> {
    let identity = connection.peer_identity()?;
    let chain = identity.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok()?;
    Some(chain_to_vecs(&chain))
}

fn chain_to_vecs(chain: &[rustls::pki_types::CertificateDer<'_>]) -> Vec<Vec<u8>> {
    chain.iter().map(|c| c.to_vec()).collect()
}

fn is_crypto_code(code: quinn::TransportErrorCode) -> bool {
    (0x100..=0x1ff).contains(&u64::from(code))
}

/// Sorts a QUIC connection failure on the client: a crypto close *from the hub* means it refused us; a crypto
/// error raised *here* means we refused the hub.
fn classify_quic(error: ConnectionError) -> ConnectError {
    match error {
        ConnectionError::ConnectionClosed(close) if is_crypto_code(close.error_code) => {
            ConnectError::NotAuthorized(format!("quic: {close}"))
        }
        ConnectionError::TransportError(e) if is_crypto_code(e.code) => {
            ConnectError::HubNotTrusted(format!("quic: {e}"))
        }
        ConnectionError::ApplicationClosed(close) if close.error_code == VarInt::from_u32(CLOSE_NO_ALPN) => {
            ConnectError::NotAuthorized(format!("quic: {close}"))
        }
        ConnectionError::TimedOut | ConnectionError::Reset => ConnectError::Unreachable(format!("quic: {error}")),
        e => ConnectError::Other(format!("quic: {e}")),
    }
}

fn classify_quic_write(error: quinn::WriteError) -> ConnectError {
    match error {
        quinn::WriteError::ConnectionLost(e) => classify_quic(e),
        e => ConnectError::Other(format!("quic: {e}")),
    }
}

/// Sorts a TLS-over-TCP failure on the client, by the rustls error inside the I/O error when there is one.
fn classify_tcp(error: io::Error) -> ConnectError {
    match error.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
        Some(rustls::Error::AlertReceived(alert)) => {
            ConnectError::NotAuthorized(format!("tcp: hub sent alert {alert:?}"))
        }
        Some(
            e @ (rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType),
        ) => ConnectError::HubNotTrusted(format!("tcp: {e}")),
        Some(e) => ConnectError::Other(format!("tcp: {e}")),
        None => ConnectError::Unreachable(format!("tcp: {error}")),
    }
}

/// Maps I/O errors from either path to [`TransportError`], recovering quinn's detail where it is inside.
fn io_error(error: io::Error) -> TransportError {
    let quinn_read = error.get_ref().and_then(|e| e.downcast_ref::<quinn::ReadError>()).cloned();
    let quinn_write = error.get_ref().and_then(|e| e.downcast_ref::<quinn::WriteError>()).cloned();
    let lost = match (quinn_read, quinn_write) {
        (Some(quinn::ReadError::ConnectionLost(e)), _) | (_, Some(quinn::WriteError::ConnectionLost(e))) => e,
        (Some(quinn::ReadError::Reset(code)), _) | (_, Some(quinn::WriteError::Stopped(code))) => {
            return TransportError::ClosedByPeer { code: code.into_inner(), reason: "stream reset".into() };
        }
        _ => {
            return match error.kind() {
                io::ErrorKind::UnexpectedEof => TransportError::ConnectionLost("closed without close_notify".into()),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected => {
                    TransportError::ConnectionLost(error.to_string())
                }
                _ => TransportError::Io(error),
            };
        }
    };
    connection_error(lost)
}

fn connection_error(error: ConnectionError) -> TransportError {
    match error {
        ConnectionError::ApplicationClosed(close) => TransportError::ClosedByPeer {
            code: close.error_code.into_inner(),
            reason: String::from_utf8_lossy(&close.reason).into_owned(),
        },
        ConnectionError::LocallyClosed => TransportError::LocallyClosed,
        e => TransportError::ConnectionLost(e.to_string()),
    }
}
