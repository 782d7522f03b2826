//! Loopback throughput of the transport (`datum_host::net`), QUIC and TLS over TCP, with certificates made on the spot:
//! `cargo run --release -p datum-host --example net_throughput [MiB]` (default 256).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use datum_host::net::pki::{self, Issuer};
use datum_host::net::tls::{self, HubTrust};
use datum_host::net::transport::{connect, ConnectOpts, Listener, Mode};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n_mib: usize = std::env::args().nth(1).map(|s| s.parse()).transpose()?.unwrap_or(256);
    let now = Utc::now();
    let year = chrono::Duration::days(365);
    let ca = pki::new_ca("bench-hub", now - year, now + year)?;
    let issuer = Issuer::load(&ca.issuing_cert_pem, &ca.issuing_key_pem, &ca.root_cert_pem)?;
    let (server_chain, server_key) = issuer.server_cert("bench-hub", now - year, now + year)?;
    let (node_key, csr) = pki::new_node_key()?;
    let node = issuer.sign_node_csr(&csr, "bench-site", "bench-node", now - year, now + year)?;
    let server_config = tls::server_config(&server_chain, &server_key, &ca.root_cert_pem)?;
    let client_config =
        tls::client_config(HubTrust::Root(ca.root_cert_pem.clone()), Some((&node.chain_pem, &node_key)))?;

    let loopback: SocketAddr = "127.0.0.1:0".parse()?;
    let listener = Listener::bind(loopback, server_config, true, true).await?;
    let addr = listener.local_addr().to_string();
    let chunk = vec![0x5au8; 1 << 20];
    for mode in [Mode::QuicOnly, Mode::TcpOnly] {
        let opts = ConnectOpts { mode, ..ConnectOpts::default() };
        let handshake_started = Instant::now();
        let (client, server) = tokio::join!(connect(&addr, client_config.clone(), &opts), async {
            listener.accept().await.ok_or("listener closed")?.handshake().await.map_err(|e| e.to_string())
        });
        let handshake = handshake_started.elapsed();
        let (mut tx, _rx, _closer) = client?.split();
        let (_stx, mut rx, _scloser) = server?.split();
        let started = Instant::now();
        let send = async {
            for _ in 0..n_mib {
                tx.send(&chunk).await?;
            }
            tx.finish().await;
            Ok::<_, Box<dyn std::error::Error>>(())
        };
        let receive = async {
            let mut n_bytes = 0usize;
            while let Some(frame) = rx.recv().await? {
                n_bytes += frame.len();
            }
            Ok::<_, Box<dyn std::error::Error>>(n_bytes)
        };
        let (sent, received) = tokio::join!(send, receive);
        sent?;
        let n_bytes = received?;
        let elapsed = started.elapsed().max(Duration::from_micros(1));
        println!(
            "{mode:?}: handshake {:.1} ms, {} MiB in {:.2} s = {:.0} MiB/s",
            handshake.as_secs_f64() * 1e3,
            n_bytes >> 20,
            elapsed.as_secs_f64(),
            (n_bytes as f64 / (1 << 20) as f64) / elapsed.as_secs_f64()
        );
    }
    Ok(())
}
