//! The rules of enrollment, without I/O: what the hub grants for a one-time token, and what an edge accepts as
//! the answer. The hub's driver looks up the token and the site, asks [`decide`], then signs and stores; the
//! edge's driver checks the certificate chain against the pinned root, then asks [`check_answer`].

use crate::ids::{NodeName, SiteId};

/// What the hub's store says about a one-time token (by its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    Valid { site: String },
    Unknown,
    Used,
    Expired,
}

/// What the hub holds about the token's site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteState {
    pub revoked: bool,
    /// Set by the site's first enrollment: the id of the site's documents.
    pub site_id: Option<SiteId>,
}

/// What a node asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// A plant's edge joins the hub: its site name and the site id it made at `init`.
    Enroll { site_name: &'a str, site_id: &'a str, node: &'a str },
    /// A new node rebuilds a site whose disk died (`restore-from-hub`); `site_name` when the user named it.
    Restore { site_name: Option<&'a str>, node: &'a str },
}

/// What the hub grants: a certificate for `node` of `site`, bound to `site_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub site: String,
    pub site_id: SiteId,
    pub node: NodeName,
    /// A restore: the site's previous nodes are replaced (refused from then on).
    pub replaces_nodes: bool,
}

/// The hub's decision on an enrollment: a grant, or the reason the node is told. `site` is what the store
/// holds about the token's site (`None`: none, e.g. removed).
pub fn decide(token: &TokenState, site: Option<&SiteState>, request: Request<'_>) -> Result<Grant, String> {
    let token_site = match token {
        TokenState::Valid { site } => site,
        TokenState::Unknown => return Err("unknown enrollment token".into()),
        TokenState::Used => return Err("this enrollment token was already used".into()),
        TokenState::Expired => return Err("this enrollment token has expired; ask for a new one".into()),
    };
    let node = match request {
        Request::Enroll { node, .. } | Request::Restore { node, .. } => node,
    };
    match request {
        Request::Enroll { site_name, site_id, .. } => {
            if token_site != site_name {
                return Err(format!("this token is for site {token_site}, but this edge is site {site_name}"));
            }
            let site_id = SiteId::new(site_id).map_err(|_| "malformed site id".to_string())?;
            Ok(Grant { site: token_site.clone(), site_id, node: check_node(node)?, replaces_nodes: false })
        }
        Request::Restore { site_name, .. } => {
            if let Some(expected) = site_name {
                if expected != token_site {
                    return Err(format!(
                        "this token is for site {token_site}, not {expected}: a restore cannot change the site"
                    ));
                }
            }
            let site = site.ok_or("unknown site")?;
            if site.revoked {
                return Err(format!("site {token_site} is revoked"));
            }
            let Some(site_id) = &site.site_id else {
                return Err(format!(
                    "site {token_site} has never been enrolled, so the hub holds nothing to restore; set up a new \
                     edge with `datum-edge init` and `datum-edge enroll`"
                ));
            };
            Ok(Grant {
                site: token_site.clone(),
                site_id: site_id.clone(),
                node: check_node(node)?,
                replaces_nodes: true,
            })
        }
    }
}

/// The edge's check of the hub's answer, once the certificate chain matched the pinned root: the certificate
/// names the site and node asked for (and, for a restore, the site the user named), and the site id is well
/// formed: it is returned as one.
pub fn check_answer(
    asked_site: Option<&str>,
    asked_node: &str,
    issued_site: &str,
    issued_node: &str,
    site_id: &str,
) -> Result<SiteId, String> {
    if issued_node != asked_node || asked_site.is_some_and(|s| s != issued_site) {
        return Err(format!("the hub issued a certificate for {issued_site}/{issued_node}"));
    }
    SiteId::new(site_id).map_err(|_| "the hub sent a malformed site id".to_string())
}

fn check_node(node: &str) -> Result<NodeName, String> {
    NodeName::new(node).map_err(|e| format!("node name: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef";

    fn valid(site: &str) -> TokenState {
        TokenState::Valid { site: site.into() }
    }

    fn enrolled() -> SiteState {
        SiteState { revoked: false, site_id: Some(SiteId::new(ID).expect("valid id")) }
    }

    #[test]
    fn an_edge_of_the_tokens_site_is_granted_its_own_site_id() {
        let grant = decide(&valid("north"), None, Request::Enroll { site_name: "north", site_id: ID, node: "n1" });
        assert_eq!(
            grant,
            Ok(Grant {
                site: "north".into(),
                site_id: SiteId::new(ID).expect("valid id"),
                node: NodeName::new("n1").expect("valid name"),
                replaces_nodes: false
            })
        );
    }

    #[test]
    fn every_refusal_says_why() {
        let enroll = |site_name, site_id, node| Request::Enroll { site_name, site_id, node };
        let cases: [(TokenState, Request<'_>, &str); 6] = [
            (TokenState::Unknown, enroll("north", ID, "n1"), "unknown enrollment token"),
            (TokenState::Used, enroll("north", ID, "n1"), "already used"),
            (TokenState::Expired, enroll("north", ID, "n1"), "expired"),
            (valid("south"), enroll("north", ID, "n1"), "this token is for site south, but this edge is site north"),
            (valid("north"), enroll("north", "xyz", "n1"), "malformed site id"),
            (valid("north"), enroll("north", ID, "../n1"), "node name"),
        ];
        for (token, request, why) in cases {
            let refused = decide(&token, Some(&enrolled()), request).expect_err("must be refused");
            assert!(refused.contains(why), "{request:?}: {refused}");
        }
    }

    #[test]
    fn a_restore_needs_an_enrolled_unrevoked_site_and_cannot_change_it() {
        let restore = |site_name| Request::Restore { site_name, node: "n2" };
        let grant = decide(&valid("north"), Some(&enrolled()), restore(Some("north"))).expect("granted");
        assert!(grant.replaces_nodes && grant.site_id == *ID);
        let other = decide(&valid("south"), Some(&enrolled()), restore(Some("north"))).expect_err("other site");
        assert!(other.contains("this token is for site south, not north"), "{other}");
        let revoked = SiteState { revoked: true, ..enrolled() };
        assert!(decide(&valid("north"), Some(&revoked), restore(None)).expect_err("revoked").contains("revoked"));
        let never = SiteState { revoked: false, site_id: None };
        assert!(decide(&valid("north"), Some(&never), restore(None)).expect_err("new").contains("never been enrolled"));
        assert_eq!(decide(&valid("north"), None, restore(None)), Err("unknown site".into()));
    }

    #[test]
    fn the_edge_accepts_only_the_certificate_it_asked_for() {
        assert_eq!(check_answer(Some("north"), "n1", "north", "n1", ID).map(String::from).as_deref(), Ok(ID));
        assert_eq!(check_answer(None, "n1", "north", "n1", ID).map(String::from).as_deref(), Ok(ID));
        assert!(check_answer(Some("north"), "n1", "south", "n1", ID).is_err());
        assert!(check_answer(Some("north"), "n1", "north", "n2", ID).is_err());
        assert!(check_answer(None, "n1", "north", "n1", "not-an-id").is_err());
    }
}
