//! Enrollment over the sync port: a one-time token and a CSR in, a node certificate out; and the enrollment of
//! a new node that rebuilds a site whose disk died (`restore-from-hub`).

use datum_shared::ids::NodeName;
use datum_shared::sync::enrollment::{self, Grant, Request, SiteState, TokenState};

use super::*;

pub(super) async fn enroll(hub: &Hub, tx: FrameSender, mut rx: FrameReceiver) -> Result<()> {
    let (out, writer_task) = writer(tx);
    let reply = |msg: Msg| Frame { seq: 1, msg }.encode();
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .map_err(|_| anyhow!("enrollment timed out"))??;
    let Some(first) = first else { return Ok(()) };
    let answer = match Frame::decode(&first) {
        Ok(Frame { seq: 1, msg: Msg::Enroll { token, site_name, site_id, node, csr } }) => {
            let request = Request::Enroll { site_name: &site_name, site_id: &site_id, node: &node };
            match grant(hub, &token, &csr, request).await {
                Ok((grant, issued)) => {
                    info!(site = grant.site, node, "enrolled");
                    Msg::Enrolled {
                        chain_pem: issued.chain_pem,
                        root_pem: hub.identity.root_pem.clone(),
                        hub_name: hub.identity.name.clone(),
                    }
                }
                Err(reason) => {
                    info!(site = site_name, "enrollment refused: {reason}");
                    Msg::Reject { reason }
                }
            }
        }
        Ok(Frame { seq: 1, msg: Msg::EnrollForRestore { token, site_name, node, csr } }) => {
            match grant(hub, &token, &csr, Request::Restore { site_name: site_name.as_deref(), node: &node }).await {
                Ok((grant, issued)) => {
                    info!(site = grant.site, node, "enrolled to restore the site; its previous nodes are replaced");
                    Msg::EnrolledForRestore {
                        chain_pem: issued.chain_pem,
                        root_pem: hub.identity.root_pem.clone(),
                        hub_name: hub.identity.name.clone(),
                        site_name: grant.site,
                        site_id: grant.site_id.to_string(),
                    }
                }
                Err(reason) => {
                    info!(site = site_name, node, "enrollment for a restore refused: {reason}");
                    Msg::Reject { reason }
                }
            }
        }
        // Without a certificate, enrollment is the only thing a peer may do.
        Ok(_) => Msg::Reject { reason: "a node certificate is required (enroll first)".into() },
        Err(e) => Msg::Reject { reason: format!("bad frame: {e}") },
    };
    let enrolled = !matches!(answer, Msg::Reject { .. });
    let _ = out.send(reply(answer));
    if enrolled {
        // The node pins the key that signs what the hub publishes (an older edge has hung up already).
        let _ =
            out.send(Frame { seq: 2, msg: Msg::PublishingKey { key: hub.identity.publishing_key.to_vec() } }.encode());
    }
    drop(out);
    let _ = writer_task.await;
    linger(&mut rx).await;
    Ok(())
}

/// Signs a node's CSR for `NODE_CERT_DAYS` (backdated an hour for clock skew) and describes the result as
/// the `nodes` row the hub records.
pub(super) fn issue_node_cert(
    hub: &Hub,
    csr: &[u8],
    site: &str,
    node: &NodeName,
    now: DateTime<Utc>,
) -> Result<(pki::IssuedCert, NodeRow), pki::PkiError> {
    let not_before = now - chrono::Duration::hours(1);
    let issued = hub.identity.issuer.sign_node_csr(
        csr,
        site,
        node.as_str(),
        not_before,
        now + chrono::Duration::days(NODE_CERT_DAYS),
    )?;
    let row = NodeRow {
        fingerprint: issued.fingerprint.clone(),
        node: node.clone(),
        site: site.to_string(),
        issued_at: now.to_rfc3339(),
        not_after: issued.not_after.to_rfc3339(),
        replaced_by: None,
    };
    Ok((issued, row))
}

/// Signs a site's web certificate for `<site>.<domain>` for `WEB_CERT_DAYS` (backdated an hour); returns
/// the chain in PEM.
pub(super) fn issue_web_cert(
    hub: &Hub,
    csr: &[u8],
    site: &str,
    domain: &str,
    now: DateTime<Utc>,
) -> Result<String, pki::PkiError> {
    let names = pki::web_names(site, domain)?;
    let not_before = now - chrono::Duration::hours(1);
    let issued =
        hub.identity.issuer.sign_web_csr(csr, &names, not_before, now + chrono::Duration::days(WEB_CERT_DAYS))?;
    Ok(issued.chain_pem)
}

/// How long a web certificate lasts (browsers accept at most 398 days; edges renew with 30 days left).
const WEB_CERT_DAYS: i64 = 90;

/// Decides an enrollment by the rules of `datum_shared::sync::enrollment`, then signs the node's CSR and
/// records the node (a restore also marks the site's previous nodes replaced, in the same transaction).
async fn grant(
    hub: &Hub,
    token: &str,
    csr: &[u8],
    request: Request<'_>,
) -> std::result::Result<(Grant, pki::IssuedCert), String> {
    let now = hub.clock.now();
    let hash = token_hash(token);
    let internal = |e: crate::store::StoreError| {
        warn!("enrollment: {e}");
        "internal error at the hub".to_string()
    };
    let state = hub.store.check_token(&hash, now).await.map_err(internal)?;
    let site = match &state {
        TokenState::Valid { site } => hub.store.site(site).await.map_err(internal)?,
        _ => None,
    };
    let site = site.map(|row| SiteState { revoked: row.revoked_at.is_some(), site_id: row.site_id });
    let grant = enrollment::decide(&state, site.as_ref(), request)?;
    let (issued, row) = issue_node_cert(hub, csr, &grant.site, &grant.node, now)
        .map_err(|e| format!("certificate request refused: {e}"))?;
    hub.store.enroll(&hash, &grant.site, &grant.site_id, &row, now, grant.replaces_nodes).await.map_err(internal)??;
    Ok((grant, issued))
}
