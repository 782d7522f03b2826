//! The transport (`datum_host::net`) over real loopback sockets, with certificates made in the test: mTLS over QUIC and TCP,
//! fallback, refusals (other CA, expired, wrong pin, no ALPN), 0-RTT off, closing, frame limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use datum_host::net::pki::{self, CaBundle, Issuer};
use datum_host::net::tls::{self, HubTrust};
use datum_host::net::transport::{
    self, connect, Conn, ConnectError, ConnectOpts, Listener, Mode, TransportError, Via, MAX_FRAME,
};

/// Generous bound for anything that should happen "promptly" on loopback, even on a loaded 2-core machine.
const PROMPTLY: Duration = Duration::from_secs(10);

struct Hub {
    ca: CaBundle,
    issuer: Issuer,
    server_config: Arc<rustls::ServerConfig>,
}

fn days(n: i64) -> chrono::Duration {
    chrono::Duration::days(n)
}

fn new_hub(name: &str) -> Hub {
    let now = Utc::now();
    let ca = pki::new_ca(name, now - days(1), now + days(3650)).expect("new ca");
    let issuer = Issuer::load(&ca.issuing_cert_pem, &ca.issuing_key_pem, &ca.root_cert_pem).expect("load issuer");
    let (chain, key) = issuer.server_cert(name, now - days(1), now + days(365)).expect("server cert");
    let server_config = tls::server_config(&chain, &key, &ca.root_cert_pem).expect("server config");
    Hub { ca, issuer, server_config }
}

impl Hub {
    /// A node identity (chain PEM, key PEM) made the way an edge gets one: key and CSR at the node.
    fn node(&self, site: &str, node: &str, not_before: DateTime<Utc>, not_after: DateTime<Utc>) -> (String, String) {
        let (key_pem, csr) = pki::new_node_key().expect("node key");
        let issued = self.issuer.sign_node_csr(&csr, site, node, not_before, not_after).expect("sign csr");
        (issued.chain_pem, key_pem)
    }

    fn valid_node(&self) -> (String, String) {
        let now = Utc::now();
        self.node("plant-north", "edge-1", now - days(1), now + days(90))
    }

    fn root_fingerprint(&self) -> String {
        let root = pki::certs_from_pem(&self.ca.root_cert_pem).expect("root pem");
        pki::fingerprint(&root[0])
    }

    fn client(&self, identity: Option<&(String, String)>) -> Arc<rustls::ClientConfig> {
        tls::client_config(
            HubTrust::Root(self.ca.root_cert_pem.clone()),
            identity.map(|(c, k)| (c.as_str(), k.as_str())),
        )
        .expect("client config")
    }

    async fn listen(&self, udp: bool, tcp: bool) -> Listener {
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
        Listener::bind(loopback, self.server_config.clone(), udp, tcp).await.expect("bind")
    }
}

fn opts(mode: Mode) -> ConnectOpts {
    ConnectOpts { mode, quic_timeout: Duration::from_millis(1500), ..ConnectOpts::default() }
}

async fn accept_one(listener: &Listener) -> Result<Conn, TransportError> {
    let incoming = listener.accept().await.expect("listener open");
    incoming.handshake().await
}

/// Connects and accepts concurrently, bounded in time.
async fn pair(
    listener: &Listener,
    client_config: Arc<rustls::ClientConfig>,
    mode: Mode,
) -> (Result<Conn, ConnectError>, Result<Conn, TransportError>) {
    let addr = listener.local_addr().to_string();
    let options = opts(mode);
    tokio::time::timeout(PROMPTLY, async {
        tokio::join!(connect(&addr, client_config, &options), accept_one(listener))
    })
    .await
    .expect("connect and accept finish in time")
}

async fn check_round_trip(via: Via) {
    let hub = new_hub("hub-a");
    let node = hub.valid_node();
    let listener = hub.listen(true, true).await;
    let mode = if via == Via::Quic { Mode::QuicOnly } else { Mode::TcpOnly };
    let (client, server) = pair(&listener, hub.client(Some(&node)), mode).await;
    let (client, server) = (client.expect("client connects"), server.expect("server accepts"));
    assert_eq!((client.via, server.via), (via, via));

    // The hub sees who connected, from the certificate.
    let server_chain = server.peer_chain.clone().expect("client presented a certificate");
    let identity = pki::node_identity(&server_chain[0]).expect("node identity");
    assert_eq!((identity.site.as_str(), identity.node.as_str()), ("plant-north", "edge-1"));
    // The edge sees the hub's full chain, root included, so a pinned enrollment can store the root.
    let client_chain = client.peer_chain.clone().expect("hub presented a certificate");
    assert!(pki::find_by_fingerprint(&client_chain, &hub.root_fingerprint()).is_some());

    let (mut client_tx, mut client_rx, _client_closer) = client.split();
    let (mut server_tx, mut server_rx, _server_closer) = server.split();
    let big: Vec<u8> = (0..MAX_FRAME).map(|i| (i % 251) as u8).collect();
    let frames: Vec<Vec<u8>> = vec![b"hello".to_vec(), Vec::new(), big];
    let echo = async {
        while let Some(frame) = server_rx.recv().await.expect("server recv") {
            server_tx.send(&frame).await.expect("server send");
        }
        server_tx.finish().await;
    };
    let talk = async {
        for frame in &frames {
            client_tx.send(frame).await.expect("client send");
        }
        let too_big = vec![0u8; MAX_FRAME + 1];
        let err = client_tx.send(&too_big).await.expect_err("over MAX_FRAME refused");
        assert!(matches!(err, TransportError::FrameTooLarge { len } if len == MAX_FRAME + 1), "{err:?}");
        client_tx.finish().await;
        let mut received = Vec::new();
        while let Some(frame) = client_rx.recv().await.expect("client recv") {
            received.push(frame);
        }
        received
    };
    let ((), received) = tokio::time::timeout(PROMPTLY * 3, async { tokio::join!(echo, talk) })
        .await
        .expect("round trip finishes in time");
    assert_eq!(received.len(), frames.len());
    assert!(received == frames, "echoed frames differ");
}

#[tokio::test]
async fn mtls_round_trip_over_quic() {
    check_round_trip(Via::Quic).await;
}

#[tokio::test]
async fn mtls_round_trip_over_tcp() {
    check_round_trip(Via::Tcp).await;
}

#[tokio::test]
async fn oversized_length_is_refused_before_reading_the_payload() {
    // A peer announces 4 GiB and sends nothing more: the reader must refuse from the length alone (if it
    // tried to allocate and read, it would report a truncated frame instead).
    let (mut writer, mut reader) = tokio::io::duplex(64);
    tokio::io::AsyncWriteExt::write_all(&mut writer, &u32::MAX.to_be_bytes()).await.expect("write");
    let err = transport::read_frame(&mut reader).await.expect_err("refused");
    assert!(matches!(err, TransportError::FrameTooLarge { len } if len == u32::MAX as usize), "{err:?}");

    let (mut writer, mut reader) = tokio::io::duplex(64);
    let len = u32::try_from(MAX_FRAME + 1).expect("fits");
    tokio::io::AsyncWriteExt::write_all(&mut writer, &len.to_be_bytes()).await.expect("write");
    let err = transport::read_frame(&mut reader).await.expect_err("refused");
    assert!(matches!(err, TransportError::FrameTooLarge { .. }), "{err:?}");

    // And a stream cut inside a frame is an error, not a clean end.
    let (mut writer, mut reader) = tokio::io::duplex(64);
    tokio::io::AsyncWriteExt::write_all(&mut writer, &[0, 0, 0, 9, 1, 2]).await.expect("write");
    drop(writer);
    let err = transport::read_frame(&mut reader).await.expect_err("truncated");
    assert!(matches!(err, TransportError::Truncated), "{err:?}");
}

#[tokio::test]
async fn auto_falls_back_to_tcp_when_udp_is_silent() {
    let hub = new_hub("hub-a");
    let node = hub.valid_node();
    let listener = hub.listen(false, true).await;
    let started = Instant::now();
    let (client, server) = pair(&listener, hub.client(Some(&node)), Mode::Auto).await;
    let elapsed = started.elapsed();
    assert_eq!(client.expect("client connects over tcp").via, Via::Tcp);
    assert_eq!(server.expect("server accepts").via, Via::Tcp);
    // quic_timeout (1.5 s) plus a TCP handshake.
    assert!(elapsed < Duration::from_secs(6), "fallback took {elapsed:?}");
}

#[tokio::test]
async fn quic_only_reports_unreachable_when_udp_is_silent() {
    let hub = new_hub("hub-a");
    let listener = hub.listen(false, true).await;
    let addr = listener.local_addr().to_string();
    let started = Instant::now();
    let err = connect(&addr, hub.client(Some(&hub.valid_node())), &opts(Mode::QuicOnly)).await.expect_err("no quic");
    assert!(matches!(err, ConnectError::Unreachable(_)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn auto_prefers_quic() {
    let hub = new_hub("hub-a");
    let listener = hub.listen(true, true).await;
    let (client, server) = pair(&listener, hub.client(Some(&hub.valid_node())), Mode::Auto).await;
    assert_eq!(client.expect("client").via, Via::Quic);
    assert_eq!(server.expect("server").via, Via::Quic);
}

async fn check_client_refused(via: Via, hub: &Hub, client_config: Arc<rustls::ClientConfig>) {
    let listener = hub.listen(true, true).await;
    let mode = if via == Via::Quic { Mode::QuicOnly } else { Mode::TcpOnly };
    let (client, server) = pair(&listener, client_config, mode).await;
    let client_err = client.expect_err("client refused");
    assert!(matches!(client_err, ConnectError::NotAuthorized(_)), "{via:?}: {client_err:?}");
    let server_err = server.expect_err("server refuses");
    assert!(matches!(server_err, TransportError::Handshake(_)), "{via:?}: {server_err:?}");
}

#[tokio::test]
async fn client_cert_from_another_ca_is_refused() {
    let hub = new_hub("hub-a");
    let other = new_hub("hub-b");
    let foreign_node = other.valid_node();
    for via in [Via::Quic, Via::Tcp] {
        check_client_refused(via, &hub, hub.client(Some(&foreign_node))).await;
    }
}

#[tokio::test]
async fn expired_client_cert_is_refused() {
    let hub = new_hub("hub-a");
    let now = Utc::now();
    let expired = hub.node("plant-north", "edge-1", now - days(30), now - days(1));
    for via in [Via::Quic, Via::Tcp] {
        check_client_refused(via, &hub, hub.client(Some(&expired))).await;
    }
}

#[tokio::test]
async fn auto_does_not_fall_back_when_refused() {
    let hub = new_hub("hub-a");
    let other = new_hub("hub-b");
    let listener = hub.listen(true, true).await;
    let (client, server) = pair(&listener, hub.client(Some(&other.valid_node())), Mode::Auto).await;
    assert!(matches!(client, Err(ConnectError::NotAuthorized(_))), "{client:?}");
    assert!(server.is_err());
}

#[tokio::test]
async fn no_client_cert_gives_a_conn_without_peer_chain() {
    let hub = new_hub("hub-a");
    for (via, mode) in [(Via::Quic, Mode::QuicOnly), (Via::Tcp, Mode::TcpOnly)] {
        let listener = hub.listen(true, true).await;
        let (client, server) = pair(&listener, hub.client(None), mode).await;
        let server = server.expect("enrolling edge accepted at the tls layer");
        assert_eq!(server.via, via);
        assert!(server.peer_chain.is_none(), "{via:?}");
        assert!(client.expect("client").peer_chain.is_some());
    }
}

#[tokio::test]
async fn pinned_trust_accepts_the_right_fingerprint_only() {
    let hub = new_hub("hub-a");
    let other = new_hub("hub-b");
    for mode in [Mode::QuicOnly, Mode::TcpOnly] {
        let listener = hub.listen(true, true).await;
        // As a user would type it: upper case with colons.
        let typed = hub
            .root_fingerprint()
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|pair| String::from_utf8_lossy(pair).into_owned())
            .collect::<Vec<_>>()
            .join(":");
        let right = tls::client_config(HubTrust::Pinned(typed), None).expect("config");
        let (client, server) = pair(&listener, right, mode).await;
        let client = client.expect("right pin accepted");
        server.expect("server accepts");
        let chain = client.peer_chain.expect("hub chain");
        let root = pki::find_by_fingerprint(&chain, &hub.root_fingerprint()).expect("root in chain");
        assert_eq!(pki::der_to_pem(root), hub.ca.root_cert_pem);

        let wrong = tls::client_config(HubTrust::Pinned(other.root_fingerprint()), None).expect("config");
        let (client, server) = pair(&listener, wrong, mode).await;
        let err = client.expect_err("wrong pin refused");
        assert!(
            matches!(&err, ConnectError::HubNotTrusted(m) if m.contains("pinned fingerprint")),
            "{mode:?}: {err:?}"
        );
        assert!(server.is_err(), "{mode:?}");
    }
    let err = tls::client_config(HubTrust::Pinned("abc".into()), None).expect_err("not a fingerprint");
    assert!(matches!(err, tls::TlsError::Fingerprint(_)), "{err:?}");
}

#[tokio::test]
async fn pinning_the_leaf_is_not_enough() {
    // The pin must name a CA in the chain; a pinned leaf cannot anchor its own verification.
    let hub = new_hub("hub-a");
    let listener = hub.listen(true, true).await;
    let leaf_fingerprint = {
        let (client, _server) = pair(&listener, hub.client(None), Mode::TcpOnly).await;
        let chain = client.expect("client").peer_chain.expect("chain");
        pki::fingerprint(&chain[0])
    };
    let pinned_leaf = tls::client_config(HubTrust::Pinned(leaf_fingerprint), None).expect("config");
    let (client, _server) = pair(&listener, pinned_leaf, Mode::TcpOnly).await;
    assert!(matches!(client, Err(ConnectError::HubNotTrusted(_))), "{client:?}");
}

#[tokio::test]
async fn hub_cert_from_another_ca_is_refused_under_root_trust() {
    let hub = new_hub("hub-a");
    let impostor = new_hub("hub-b");
    let node = hub.valid_node();
    for mode in [Mode::QuicOnly, Mode::TcpOnly, Mode::Auto] {
        let listener = impostor.listen(true, true).await;
        let (client, server) = pair(&listener, hub.client(Some(&node)), mode).await;
        let err = client.expect_err("impostor refused");
        assert!(matches!(err, ConnectError::HubNotTrusted(_)), "{mode:?}: {err:?}");
        assert!(server.is_err(), "{mode:?}");
    }
}

#[tokio::test]
async fn connection_without_alpn_is_refused() {
    let hub = new_hub("hub-a");
    let mut no_alpn = (*hub.client(Some(&hub.valid_node()))).clone();
    no_alpn.alpn_protocols.clear();
    let no_alpn = Arc::new(no_alpn);
    for mode in [Mode::QuicOnly, Mode::TcpOnly] {
        let listener = hub.listen(true, true).await;
        let (client, server) = pair(&listener, no_alpn.clone(), mode).await;
        assert!(client.is_err(), "{mode:?}: {client:?}");
        let err = server.expect_err("server refuses");
        assert!(matches!(err, TransportError::NoAlpn | TransportError::Handshake(_)), "{mode:?}: {err:?}");
    }
}

/// Both ends offer every `datum-sync` version they speak and the hub takes the newest the edge offers, so a
/// hub or an edge of an earlier build (which offers only `datum-sync/1`) still connects, at version 1.
#[tokio::test]
async fn the_newest_common_protocol_version_is_negotiated() {
    let hub = new_hub("hub-a");
    let node = hub.valid_node();
    let mut older_edge = (*hub.client(Some(&node))).clone();
    older_edge.alpn_protocols = vec![b"datum-sync/1".to_vec()];
    let older_edge = Arc::new(older_edge);
    let mut older_hub = (*hub.server_config).clone();
    older_hub.alpn_protocols = vec![b"datum-sync/1".to_vec()];
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
    for mode in [Mode::QuicOnly, Mode::TcpOnly] {
        let listener = hub.listen(true, true).await;
        let (client, server) = pair(&listener, hub.client(Some(&node)), mode).await;
        let (client, server) = (client.expect("client connects"), server.expect("server accepts"));
        assert_eq!((client.protocol, server.protocol), (2, 2), "{mode:?}: both of this build");

        let (client, server) = pair(&listener, older_edge.clone(), mode).await;
        let (client, server) = (client.expect("older edge connects"), server.expect("server accepts"));
        assert_eq!((client.protocol, server.protocol), (1, 1), "{mode:?}: an edge of an earlier build");

        let listener = Listener::bind(loopback, Arc::new(older_hub.clone()), true, true).await.expect("bind");
        let (client, server) = pair(&listener, hub.client(Some(&node)), mode).await;
        let (client, server) = (client.expect("client connects"), server.expect("older hub accepts"));
        assert_eq!((client.protocol, server.protocol), (1, 1), "{mode:?}: a hub of an earlier build");
    }
    // A peer that offers only a version this build does not speak is refused.
    let mut future_edge = (*hub.client(Some(&node))).clone();
    future_edge.alpn_protocols = vec![b"datum-sync/3".to_vec()];
    let listener = hub.listen(true, true).await;
    let (client, server) = pair(&listener, Arc::new(future_edge), Mode::TcpOnly).await;
    assert!(client.is_err() && server.is_err(), "{client:?} {server:?}");
}

#[tokio::test]
async fn zero_rtt_is_off() {
    let hub = new_hub("hub-a");
    assert_eq!(hub.server_config.max_early_data_size, 0);
    assert_eq!(hub.server_config.send_tls13_tickets, 0);
    assert!(!second_connection_gets_zero_rtt(&hub, hub.server_config.clone()).await, "our server allowed 0-RTT");

    // Control: the same probe does see 0-RTT when a server allows it (as `with_single_cert` would), so the
    // check above can fail.
    let mut permissive = (*hub.server_config).clone();
    permissive.max_early_data_size = u32::MAX;
    permissive.send_tls13_tickets = 2;
    permissive.session_storage = rustls::server::ServerSessionMemoryCache::new(16);
    assert!(second_connection_gets_zero_rtt(&hub, Arc::new(permissive)).await, "probe cannot detect 0-RTT");
}

/// Connects twice with a raw quinn client that asks for 0-RTT and keeps sessions; reports whether the second
/// connection could send early data.
async fn second_connection_gets_zero_rtt(hub: &Hub, server_config: Arc<rustls::ServerConfig>) -> bool {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let listener = Listener::bind(loopback, server_config, true, false).await.expect("bind");
    let mut eager = (*hub.client(Some(&hub.valid_node()))).clone();
    eager.enable_early_data = true;
    eager.resumption = rustls::client::Resumption::in_memory_sessions(16);
    let quic_client = transport::quic_client_config(Arc::new(eager), false).expect("quic client config");
    let mut endpoint = quinn::Endpoint::client(loopback).expect("client endpoint");
    endpoint.set_default_client_config(quic_client);

    let server = async {
        for _ in 0..2 {
            let incoming = listener.accept().await.expect("incoming");
            // The raw client never sends the preamble: the handshake gives up and drops the connection,
            // which is what the client waits for (by then any session ticket has arrived).
            let _ = tokio::time::timeout(Duration::from_millis(300), incoming.handshake()).await;
        }
    };
    let client = async {
        let mut zero_rtt = false;
        for _ in 0..2 {
            let connecting = endpoint.connect(listener.local_addr(), tls::HUB_SERVER_NAME).expect("connect");
            let connection = match connecting.into_0rtt() {
                Ok((connection, _accepted)) => {
                    zero_rtt = true;
                    connection
                }
                Err(connecting) => connecting.await.expect("1-RTT handshake"),
            };
            connection.closed().await;
        }
        zero_rtt
    };
    let ((), zero_rtt) = tokio::time::timeout(PROMPTLY, async { tokio::join!(server, client) }).await.expect("in time");
    zero_rtt
}

async fn check_close_ends_peer_recv(mode: Mode) {
    let hub = new_hub("hub-a");
    let listener = hub.listen(true, true).await;
    let (client, server) = pair(&listener, hub.client(Some(&hub.valid_node())), mode).await;
    let (_client_tx, mut client_rx, _client_closer) = client.expect("client").split();
    let (_server_tx, mut server_rx, server_closer) = server.expect("server").split();

    // The hub cuts the edge from another task while both sides are blocked in recv.
    let cut = tokio::spawn(async move { server_closer.close(7, "revoked") });
    let started = Instant::now();
    let client_result =
        tokio::time::timeout(PROMPTLY, client_rx.recv()).await.expect("client recv ends promptly after close");
    let server_result = tokio::time::timeout(PROMPTLY, server_rx.recv()).await.expect("server recv ends too");
    cut.await.expect("close task");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    match mode {
        Mode::QuicOnly => {
            assert!(
                matches!(&client_result, Err(TransportError::ClosedByPeer { code: 7, reason }) if reason == "revoked"),
                "{client_result:?}"
            );
            assert!(matches!(server_result, Err(TransportError::LocallyClosed)), "{server_result:?}");
        }
        _ => {
            assert!(!matches!(client_result, Ok(Some(_))), "{client_result:?}");
            assert!(!matches!(server_result, Ok(Some(_))), "{server_result:?}");
        }
    }
}

#[tokio::test]
async fn closer_ends_the_peer_recv_over_quic() {
    check_close_ends_peer_recv(Mode::QuicOnly).await;
}

#[tokio::test]
async fn closer_ends_the_peer_recv_over_tcp() {
    check_close_ends_peer_recv(Mode::TcpOnly).await;
}

#[tokio::test]
async fn listener_binds_udp_and_tcp_on_the_same_port() {
    let hub = new_hub("hub-a");
    let listener = hub.listen(true, true).await;
    let port = listener.local_addr().port();
    assert_ne!(port, 0);
    // Both protocols answer on that number.
    for mode in [Mode::QuicOnly, Mode::TcpOnly] {
        let (client, server) = pair(&listener, hub.client(None), mode).await;
        assert_eq!(client.expect("client").remote.port(), port);
        server.expect("server");
    }
}

/// A UDP relay between a client and `upstream` that can be cut (every datagram dropped from then on), like a
/// hub whose host or path died while the connection was up.
async fn cuttable_udp_relay(upstream: SocketAddr) -> (SocketAddr, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind relay"));
    let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind relay upstream side"));
    back.connect(upstream).await.expect("connect upstream");
    let addr = front.local_addr().expect("relay address");
    let cut = Arc::new(AtomicBool::new(false));
    let client: Arc<std::sync::Mutex<Option<SocketAddr>>> = Arc::default();
    {
        let (front, back, cut, client) = (front.clone(), back.clone(), cut.clone(), client.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = front.recv_from(&mut buf).await {
                *client.lock().expect("client lock") = Some(from);
                if !cut.load(Ordering::Relaxed) {
                    let _ = back.send(&buf[..n]).await;
                }
            }
        });
    }
    {
        let cut = cut.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = back.recv(&mut buf).await {
                let to = *client.lock().expect("client lock");
                if let (Some(to), false) = (to, cut.load(Ordering::Relaxed)) {
                    let _ = front.send_to(&buf[..n], to).await;
                }
            }
        });
    }
    (addr, cut)
}

#[tokio::test]
async fn a_quic_peer_that_goes_silent_is_detected_within_the_idle_timeout() {
    assert!(transport::IDLE_TIMEOUT <= Duration::from_secs(10));
    let hub = new_hub("hub-a");
    let listener = hub.listen(true, false).await;
    let (relay, cut) = cuttable_udp_relay(listener.local_addr()).await;
    let options = opts(Mode::QuicOnly);
    let relay = relay.to_string();
    let (client, server) = tokio::time::timeout(PROMPTLY, async {
        tokio::join!(connect(&relay, hub.client(Some(&hub.valid_node())), &options), accept_one(&listener))
    })
    .await
    .expect("connect and accept finish in time");
    let (_client_tx, mut client_rx, _client_closer) = client.expect("client").split();
    let (_server_tx, mut server_rx, _server_closer) = server.expect("server").split();

    // Both sides wait for a frame; neither has anything to say. Keep-alives hold the connection up…
    let quiet = tokio::time::timeout(transport::IDLE_TIMEOUT + Duration::from_secs(2), client_rx.recv()).await;
    assert!(quiet.is_err(), "a quiet but live connection must stay up: {quiet:?}");
    // …until the path dies: both ends notice within the idle timeout.
    cut.store(true, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let (client_end, server_end) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(30), client_rx.recv()),
        tokio::time::timeout(Duration::from_secs(30), server_rx.recv())
    );
    let elapsed = started.elapsed();
    eprintln!("dead quic peer detected after {elapsed:?}");
    assert!(matches!(client_end, Ok(Err(TransportError::ConnectionLost(_)))), "{client_end:?}");
    assert!(matches!(server_end, Ok(Err(TransportError::ConnectionLost(_)))), "{server_end:?}");
    assert!(elapsed <= transport::IDLE_TIMEOUT + Duration::from_secs(1), "took {elapsed:?}");
}

#[tokio::test]
async fn a_tcp_peer_that_stalls_inside_a_frame_is_detected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let hub = new_hub("hub-a");
    let listener = hub.listen(false, true).await;
    // A TCP relay that forwards the hub's first 256 KiB to the client and then nothing more, keeping both
    // connections open: the hub "stops sending" with the connection up.
    let relay = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
    let relay_addr = relay.local_addr().expect("relay address");
    let upstream = listener.local_addr();
    tokio::spawn(async move {
        let Ok((client, _)) = relay.accept().await else { return };
        let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut server_read, mut server_write) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        });
        let mut budget = 256 * 1024usize;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let n = n.min(budget);
            if n > 0 && client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            budget -= n;
        }
        // Hold the client's connection open without a word.
        std::future::pending::<()>().await;
        drop(client_write);
    });
    let options = opts(Mode::TcpOnly);
    let relay_addr = relay_addr.to_string();
    let (client, server) = tokio::time::timeout(PROMPTLY, async {
        tokio::join!(connect(&relay_addr, hub.client(Some(&hub.valid_node())), &options), accept_one(&listener))
    })
    .await
    .expect("connect and accept finish in time");
    let (_client_tx, mut client_rx, _client_closer) = client.expect("client").split();
    let (mut server_tx, _server_rx, _server_closer) = server.expect("server").split();
    tokio::spawn(async move {
        let big = vec![7u8; MAX_FRAME];
        let _ = server_tx.send(&big).await;
        std::future::pending::<()>().await;
        drop(server_tx);
    });
    let started = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(30), client_rx.recv()).await;
    let elapsed = started.elapsed();
    eprintln!("stalled tcp peer detected after {elapsed:?}");
    assert!(matches!(end, Ok(Err(TransportError::Stalled(_)))), "{end:?}");
    assert!(elapsed <= transport::FRAME_STALL + Duration::from_secs(2), "took {elapsed:?}");
}
