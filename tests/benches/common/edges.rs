//! Simulated edges for the benches (included by `federation.rs` and `hub.rs`): a real enrollment and a real
//! sync `Session` per edge over its own QUIC connection, without a process per edge.

use std::time::Instant;

use automerge::Automerge;
use datum_host::net::{pki, tls, transport};
use datum_shared::ids::SiteId;
use datum_shared::model::{Asset, AssetKind, Criticality};
use datum_shared::sync::wire::{Frame, Msg};
use datum_shared::sync::{Event, LocalDoc, Principal, Session, SessionConfig};
use datum_shared::DocId;

/// One simulated edge: a real sync session over a real connection, with a small inventory document, that
/// stays connected after it is in sync.
pub async fn simulated_edge(
    addr: String,
    token: String,
    fingerprint: String,
    site_name: String,
) -> tokio::task::JoinHandle<()> {
    let site_id = format!("{:016x}", rand_id());
    let (key_pem, csr) = pki::new_node_key().expect("key");
    // Enroll.
    let config = tls::client_config(tls::HubTrust::Pinned(fingerprint), None).expect("config");
    let conn = transport::connect(&addr, config, &transport::ConnectOpts::default()).await.expect("connect");
    let (mut tx, mut rx, closer) = conn.split();
    let msg =
        Msg::Enroll { token, site_name: site_name.clone(), site_id: site_id.clone(), node: site_name.clone(), csr };
    tx.send(&Frame { seq: 1, msg }.encode()).await.expect("send");
    let reply = rx.recv().await.expect("recv").expect("answer");
    closer.close(0, "");
    let Msg::Enrolled { chain_pem, root_pem, .. } = Frame::decode(&reply).expect("frame").msg else {
        panic!("enrollment refused")
    };
    // Sync one document, then stay.
    let config = tls::client_config(tls::HubTrust::Root(root_pem), Some((&chain_pem, &key_pem))).expect("config");
    let conn = transport::connect(&addr, config, &transport::ConnectOpts::default()).await.expect("connect");
    let protocol = conn.protocol;
    let (mut tx, mut rx, closer) = conn.split();
    let doc_id = DocId::site(&site_id, "inventory");
    let mut doc = Automerge::new();
    let mut t = doc.transaction();
    for i in 0..20 {
        let name = datum_shared::AssetName::new(&format!("plc-{i}")).expect("name");
        let asset = Asset::new(name, AssetKind::Plc, Criticality::High, "bench", chrono::Utc::now());
        let record = serde_json::to_value(&asset).expect("json");
        datum_shared::document::put_record(&mut t, Asset::COLLECTION, asset.name.as_str(), &record).expect("put");
    }
    t.commit();
    let cfg = SessionConfig {
        me: Principal::Site { site_id: SiteId::new(&site_id).expect("valid site id") },
        peer: Principal::Hub,
        node: site_name,
        store: site_id,
        restoring: false,
        protocol,
    };
    let mut session =
        Session::new(cfg, vec![LocalDoc { id: doc_id.clone(), heads: doc.get_heads(), saved_state: None }]);
    tokio::spawn(async move {
        let mut synced = false;
        loop {
            while let Some(event) = session.poll_event() {
                match event {
                    Event::Load(ids) => {
                        for id in ids {
                            session.provide(&id, Some(doc.clone()));
                        }
                    }
                    Event::SendBlobs(_) => session.blobs_sent(),
                    Event::Synced { .. } => synced = true,
                    Event::Failed(e) | Event::Rejected(e) | Event::Violation(e) => panic!("simulated edge: {e}"),
                    _ => {}
                }
            }
            while let Some(frame) = session.poll_transmit() {
                tx.send(&frame).await.expect("send");
            }
            if synced {
                break;
            }
            match rx.recv().await {
                Ok(Some(frame)) => session.handle(&frame),
                _ => panic!("hub closed"),
            }
        }
        // Stay connected (QUIC keep-alives) until the bench ends.
        while let Ok(Some(_)) = rx.recv().await {}
        drop(closer);
    })
}

fn rand_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}
