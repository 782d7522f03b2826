//! `datum-hub serve --web ADDR`: the corporate dashboard and its JSON API, over the hub's copy of every site.
//!
//! The scaffolding (serving, headers, sessions, sign-in, CSRF, tokens) is `datum_host::web`, the same as the
//! plant's; this module holds the hub's routes. Every handler identifies the person, authorizes the action
//! with `datum_shared::identity::authorize`, and reaches a site only through [`App::site`] or [`App::sites`],
//! which keep to the person's scope: a site outside it is answered exactly like a site that does not exist
//! (404), so a scoped account cannot even learn the other plants' names.
//!
//! What a page shows of a site is `commands::overview`, the same counts and lists as `datum-hub status`.
//! Computing them reads all of a site's records, so each site's overview is kept in memory until the site
//! syncs again (its contact and sync times change) or the hour turns (overdue states depend on the clock):
//! a page view does not scan the records. A task beside the server ([`App::refresh`], every
//! [`REFRESH_EVERY`]) computes what is missing or out of date as soon as it is, from the start on and after
//! each sync, so a page view seldom waits; one overview is computed at a time, and a view that finds its site
//! being computed waits for that result rather than computing it again. The same task keeps each site's rows
//! of the search index up to date ([`App::indexed`]); a search checks the sites it looks in, a page view never
//! waits for indexing.

mod api;
mod approvals;
mod compliance;
mod pages;
mod search;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, Method};
use axum::middleware;
use axum::Router;
use chrono::{DateTime, Utc};
use datum_host::auth::{AuthStore, SessionLimits};
use datum_host::web::{self, Auth, Clock, Directory, Identity, WebError};
use datum_shared::identity::{Action, Role, User};
use datum_shared::model::Asset;

use crate::commands::overview::{overview, Overview};
use crate::store::{SiteRow, Store};

/// The hub's people, read from its database on each request (a change of roles, scope or a disabled account
/// takes effect at once).
#[derive(Clone)]
pub struct HubDirectory {
    store: Store,
    title: String,
}

impl Directory for HubDirectory {
    async fn user(&self, name: &str) -> Result<Option<User>> {
        // Only the hub's roles count here (a plant's roles are the plant's).
        Ok(self.store.user(name).await?.map(|mut u| {
            u.roles.retain(|r| Role::HUB.contains(r));
            u
        }))
    }

    fn title(&self) -> String {
        self.title.clone()
    }

    fn links(&self, _user: &User) -> Vec<(&'static str, &'static str)> {
        vec![
            ("Sites", "/"),
            ("Inventory", "/assets"),
            ("Search", "/search"),
            ("Compliance", "/compliance"),
            ("Approvals", "/approvals"),
        ]
    }
}

/// A site's overview and what it was computed from.
struct Cached {
    key: CacheKey,
    overview: Arc<Overview>,
}

/// What a site's overview depends on besides its records: a sync moves the contact and sync times, and the
/// overdue states move with the clock.
#[derive(PartialEq, Eq)]
struct CacheKey {
    last_contact: Option<String>,
    last_synced: Option<String>,
    last_result: Option<String>,
    revoked_at: Option<String>,
    hour: i64,
}

impl CacheKey {
    fn of(row: &SiteRow, now: DateTime<Utc>) -> CacheKey {
        CacheKey {
            last_contact: row.last_contact.clone(),
            last_synced: row.last_synced.clone(),
            last_result: row.last_result.clone(),
            revoked_at: row.revoked_at.clone(),
            hour: now.timestamp().div_euclid(3600),
        }
    }
}

/// What every hub handler shares.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    /// The hub's publishing key (`identity/signing.key`), read once at start: it signs central decisions and
    /// derives the per-site key of secret fingerprints on the comparison page.
    pub signing: Arc<ed25519_dalek::SigningKey>,
    pub auth: Auth<HubDirectory>,
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    /// Held while an overview is computed: one at a time, and never the same twice.
    computing: Arc<tokio::sync::Mutex<()>>,
    /// Per site, the sync its search rows are of (as far as this process knows), and one re-indexing at a time.
    indexed: Arc<tokio::sync::Mutex<HashMap<String, String>>>,
    /// Per site, the shared templates' failing and waived results the plants last reported (the landing page's
    /// column), with what they were read after: every site's last sync, and the hour.
    standards: Arc<Mutex<Option<KeyedStandards>>>,
}

/// Per site: (failing, waived) results of the shared templates, as reported.
pub type Standards = HashMap<String, (u64, u64)>;

/// [`Standards`] with the key of what they were read after.
type KeyedStandards = (u64, Arc<Standards>);

/// How often the refresher looks for sites whose overview is missing or out of date.
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl App {
    pub fn now(&self) -> DateTime<Utc> {
        self.auth.now()
    }

    /// Identifies the person and checks the action.
    pub async fn allow(
        &self,
        headers: &HeaderMap,
        method: &Method,
        form_csrf: Option<&str>,
        action: Action,
    ) -> Result<Identity, WebError> {
        self.auth.allow(headers, method, form_csrf, action).await
    }

    /// The overviews of every site the person may see, by name.
    pub async fn sites(&self, who: &User) -> Result<Vec<Arc<Overview>>, WebError> {
        let rows = self.store.sites().await.map_err(|e| internal(e.into()))?;
        let mut out = Vec::new();
        for row in rows.into_iter().filter(|r| who.sees_site(&r.name)) {
            out.push(self.overview_of(row).await?);
        }
        Ok(out)
    }

    /// One site the person may see; any other name is "no such site" (404), whether it exists or not.
    pub async fn site(&self, who: &User, name: &str) -> Result<Arc<Overview>, WebError> {
        let not_found = || WebError::NotFound(format!("no site named {name}"));
        if !who.sees_site(name) {
            return Err(not_found());
        }
        let row = self.store.site(name).await.map_err(|e| internal(e.into()))?.ok_or_else(not_found)?;
        self.overview_of(row).await
    }

    async fn overview_of(&self, row: SiteRow) -> Result<Arc<Overview>, WebError> {
        Ok(self.computed(row).await.map_err(internal)?.0)
    }

    /// The site's overview, from the cache when it is up to date; `true` when it was computed now.
    async fn computed(&self, row: SiteRow) -> Result<(Arc<Overview>, bool)> {
        let now = self.now();
        let key = CacheKey::of(&row, now);
        let cached = |app: &App| {
            app.cache.lock().expect("cache lock").get(&row.name).filter(|c| c.key == key).map(|c| c.overview.clone())
        };
        if let Some(hit) = cached(self) {
            return Ok((hit, false));
        }
        let _computing = self.computing.lock().await;
        // Computed while this waited?
        if let Some(hit) = cached(self) {
            return Ok((hit, false));
        }
        let fresh = Arc::new(overview(&self.store, &row, now).await?);
        self.cache.lock().expect("cache lock").insert(row.name.clone(), Cached { key, overview: fresh.clone() });
        Ok((fresh, true))
    }

    /// What each plant last reported of the shared templates, read again only after a sync (or when the hour
    /// turns: an assignment changed at the hub shows within the hour).
    pub async fn standards(&self) -> Result<Arc<Standards>> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for row in self.store.sites().await? {
            (row.name, row.last_synced).hash(&mut h);
        }
        self.now().timestamp().div_euclid(3600).hash(&mut h);
        let key = h.finish();
        if let Some((k, v)) = self.standards.lock().expect("standards lock").as_ref() {
            if *k == key {
                return Ok(v.clone());
            }
        }
        let mut out = Standards::new();
        for r in crate::commands::templates::compliance_rows(&self.store, None, None).await? {
            let e = out.entry(r.site.clone()).or_default();
            e.0 += r.counts.non_compliant + r.counts.error;
            e.1 += r.counts.waived;
        }
        let out = Arc::new(out);
        *self.standards.lock().expect("standards lock") = Some((key, out.clone()));
        Ok(out)
    }

    /// Brings every site's overview up to date (a site removed from the hub leaves the cache); returns how
    /// many were computed.
    pub async fn refresh(&self) -> Result<usize> {
        let rows = self.store.sites().await?;
        let names: std::collections::HashSet<String> = rows.iter().map(|r| r.name.clone()).collect();
        self.cache.lock().expect("cache lock").retain(|name, _| names.contains(name));
        let mut computed = 0;
        for row in rows {
            let (o, fresh) = self.computed(row).await?;
            computed += usize::from(fresh);
            self.indexed(&o).await?;
        }
        Ok(computed)
    }

    /// Makes sure the site's rows in the search index are of its last sync (`search::index`). The refresher
    /// does it after each sync, and a search for the sites it looks in: a page view never waits for it.
    pub async fn indexed(&self, o: &Overview) -> Result<()> {
        let Some(synced) = o.row.last_synced.as_deref() else { return Ok(()) };
        let mut indexed = self.indexed.lock().await;
        if indexed.get(&o.row.name).map(String::as_str) == Some(synced) {
            return Ok(());
        }
        search::index(&self.store, o).await?;
        indexed.insert(o.row.name.clone(), synced.to_string());
        Ok(())
    }

    /// Runs [`App::refresh`] every [`REFRESH_EVERY`] until the task is dropped.
    async fn refresh_forever(self) {
        let started = std::time::Instant::now();
        match self.refresh().await {
            Ok(n) => tracing::info!("dashboard: {n} site overviews ready in {} ms", started.elapsed().as_millis()),
            Err(e) => tracing::warn!("dashboard: computing the site overviews: {e:#}"),
        }
        loop {
            tokio::time::sleep(REFRESH_EVERY).await;
            if let Err(e) = self.refresh().await {
                tracing::warn!("dashboard: refreshing the site overviews: {e:#}");
            }
        }
    }
}

/// Assets on one page of the inventory (the page, and the API unless `limit` says otherwise).
pub const PAGE: usize = 500;
/// The most assets one API answer holds.
pub const MAX_PAGE: usize = 5000;

/// The assets of `sites` that pass `filter`, in site and name order, without a copy: the inventory page, its
/// CSV and JSON, and `GET /api/v1/assets`.
pub fn inventory<'a>(sites: &'a [Arc<Overview>], filter: &Filter, now: DateTime<Utc>) -> Vec<(&'a str, &'a Asset)> {
    let mut out = Vec::new();
    for site in sites {
        if filter.site.as_deref().is_some_and(|s| s != site.row.name) {
            continue;
        }
        let Some(f) = &site.findings else { continue };
        out.extend(f.view.assets.values().filter(|a| filter.matches(a, now)).map(|a| (site.row.name.as_str(), a)));
    }
    out
}

/// The page of `list` (in site, then asset order, as [`inventory`] returns it) that starts after the key
/// `after` (`site/asset`, the last key of the page before), at most `limit` long: its range in `list`, and the
/// key to give for the next page when there is one. A key, not an offset: a page stays right while assets are
/// added or retired.
pub fn page_after(
    list: &[(&str, &Asset)],
    after: Option<&str>,
    limit: usize,
) -> (std::ops::Range<usize>, Option<String>) {
    let start = match after.and_then(|k| k.split_once('/')) {
        Some((site, asset)) => list.partition_point(|(s, a)| (*s, a.name.as_str()) <= (site, asset)),
        None => 0,
    };
    let end = (start + limit).min(list.len());
    let next = (end < list.len() && end > start).then(|| {
        let (s, a) = &list[end - 1];
        format!("{s}/{}", a.name)
    });
    (start..end, next)
}

/// The inventory's filters (each a query parameter; empty means any).
#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Filter {
    pub site: Option<String>,
    pub kind: Option<String>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub zone: Option<String>,
    pub criticality: Option<String>,
    /// Words that must each occur in the name, vendor, model, serial, firmware, IP, location, zone or owner.
    pub q: Option<String>,
    /// `owner` or `zone`: only assets without one.
    pub missing: Option<String>,
    /// `new` (created in the last 7 days) or `retired` (retired in the last 7 days).
    pub recent: Option<String>,
    /// Retired assets too.
    pub all: Option<String>,
    /// `in`: only assets in scope (the ones a site's reports count).
    pub scope: Option<String>,
    /// The page after this key (`site/asset`, [`page_after`]).
    pub after: Option<String>,
}

impl Filter {
    /// Empty parameters (a form sends them) mean "any".
    pub fn tidy(mut self) -> Filter {
        for v in [
            &mut self.site,
            &mut self.kind,
            &mut self.vendor,
            &mut self.model,
            &mut self.firmware,
            &mut self.zone,
            &mut self.criticality,
            &mut self.q,
            &mut self.missing,
            &mut self.recent,
            &mut self.all,
            &mut self.scope,
            &mut self.after,
        ] {
            if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
                *v = None;
            }
        }
        self
    }

    pub fn matches(&self, a: &Asset, now: DateTime<Utc>) -> bool {
        let wanted = self.facets();
        self.matches_base(a, now)
            && facet_values(a).iter().zip(&wanted).all(|(have, want)| want.is_none_or(|w| *have == Some(w)))
    }

    /// Every filter but the facets' (kind, vendor, model, firmware, zone, criticality).
    pub fn matches_base(&self, a: &Asset, now: DateTime<Utc>) -> bool {
        let week = chrono::Duration::days(7);
        let recent = match self.recent.as_deref() {
            Some("new") => now - a.created_at <= week,
            Some("retired") => a.retired_at.is_some_and(|t| now - t <= week),
            _ => true,
        };
        let active = a.is_active() || self.all.is_some() || self.recent.as_deref() == Some("retired");
        let missing = match self.missing.as_deref() {
            Some("owner") => a.owner.is_none(),
            Some("zone") => a.zone.is_none(),
            _ => true,
        };
        let scope = self.scope.as_deref() != Some("in") || a.in_scope;
        recent && active && scope && missing && self.q.as_deref().is_none_or(|q| words_match(q, &asset_text(a)))
    }

    /// The value each facet must have, in [`FACETS`] order.
    pub fn facets(&self) -> [Option<&str>; 6] {
        [&self.kind, &self.vendor, &self.model, &self.firmware, &self.zone, &self.criticality].map(|v| v.as_deref())
    }

    /// The filter as a query string, from the first page (for links to facets, the CSV and JSON of the same
    /// list).
    pub fn query(&self) -> String {
        let mut first = self.clone();
        first.after = None;
        serde_urlencoded_pairs(&first)
    }
}

/// `key=value&…` of the set fields, percent-encoded.
fn serde_urlencoded_pairs(f: &Filter) -> String {
    let value = serde_json::to_value(f).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            if let Some(s) = v.as_str() {
                out.push(format!("{k}={}", web::url_segment(s)));
            }
        }
    }
    out.join("&")
}

/// The inventory's facets, in the order of [`facet_values`].
pub const FACETS: [&str; 6] = ["kind", "vendor", "model", "firmware", "zone", "criticality"];

/// An asset's value of each facet ([`FACETS`]).
pub fn facet_values(a: &Asset) -> [Option<&str>; 6] {
    [
        Some(a.kind.as_str()),
        a.vendor.as_deref(),
        a.model.as_deref(),
        a.firmware.as_deref(),
        a.zone.as_deref(),
        Some(a.criticality.as_str()),
    ]
}

/// The text an asset is found by: its name and every descriptive field, lower-cased.
pub fn asset_text(a: &Asset) -> String {
    let mut text = a.name.to_string();
    for v in [&a.vendor, &a.model, &a.serial, &a.firmware, &a.ip, &a.location, &a.zone, &a.owner].into_iter().flatten()
    {
        text.push(' ');
        text.push_str(v);
    }
    for tag in &a.tags {
        text.push(' ');
        text.push_str(tag);
    }
    text.to_lowercase()
}

/// Whether every word of `query` occurs in `text` (already lower-cased).
pub fn words_match(query: &str, text: &str) -> bool {
    let query = query.to_lowercase();
    let mut words = query.split_whitespace().peekable();
    words.peek().is_some() && words.all(|w| text.contains(w))
}

/// An unexpected failure: logged, shown as a 500 without detail.
pub fn internal(e: anyhow::Error) -> WebError {
    WebError::Internal(format!("{e:#}"))
}

/// The whole router of the dashboard and API.
pub fn router(app: App) -> Router {
    let auth_routes = web::auth_routes::<HubDirectory>().with_state(app.auth.clone());
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .merge(approvals::routes())
        .merge(compliance::routes())
        .with_state(app)
        .merge(auth_routes)
        .layer(DefaultBodyLimit::max(web::MAX_BODY))
        .layer(middleware::from_fn(web::security_headers))
}

/// Builds the dashboard over a hub's database; the sessions and secrets live in `auth.db` in `data`.
pub async fn app(
    store: Store,
    data: &std::path::Path,
    title: String,
    limits: SessionLimits,
    clock: Clock,
) -> Result<App> {
    let auth_store = AuthStore::open(data).await?;
    let directory = HubDirectory { store: store.clone(), title };
    Ok(App {
        store,
        signing: Arc::new(crate::identity::signing_key(data)?),
        auth: Auth { store: auth_store, directory, limits, clock },
        cache: Arc::default(),
        computing: Arc::default(),
        indexed: Arc::default(),
        standards: Arc::default(),
    })
}

/// The dashboard's HTTPS certificate: the files of `[tls]` when given; else one issued by the hub's own CA for
/// `web_names` (default: `localhost` and this machine's name), kept in `identity/web.pem` and reissued when the
/// names change or less than 30 days are left. Returns the server configuration and the leaf's SHA-256.
fn tls(
    data: &std::path::Path,
    identity: &crate::identity::Identity,
    config: &crate::config::Config,
    now: DateTime<Utc>,
) -> Result<(Arc<rustls::ServerConfig>, String)> {
    use anyhow::Context as _;
    use datum_host::net::{pki, tls};
    let fingerprint = |chain: &str| -> Result<String> {
        let leaf =
            pki::certs_from_pem(chain)?.into_iter().next().context("the certificate file holds no certificate")?;
        Ok(pki::fingerprint(&leaf))
    };
    if let (Some(cert), Some(key)) = (&config.settings.cert, &config.settings.key) {
        let cert_pem = std::fs::read_to_string(cert).with_context(|| format!("read {}", cert.display()))?;
        let key_pem = std::fs::read_to_string(key).with_context(|| format!("read {}", key.display()))?;
        return Ok((tls::web_server_config(&cert_pem, &key_pem)?, fingerprint(&cert_pem)?));
    }
    let mut names = config.web_names.clone();
    if names.is_empty() {
        names.push("localhost".into());
        if let Ok(host) = std::fs::read_to_string("/etc/hostname") {
            let host = host.trim();
            if !host.is_empty() && host != "localhost" {
                names.push(host.to_string());
            }
        }
    }
    let (cert, key, named) =
        (data.join("identity/web.pem"), data.join("identity/web.key"), data.join("identity/web.names"));
    let wanted = names.join("\n");
    let current =
        std::fs::read_to_string(&cert).ok().filter(|_| std::fs::read_to_string(&named).ok() == Some(wanted.clone()));
    let fresh = current.as_deref().and_then(|pem| {
        let leaf = pki::certs_from_pem(pem).ok()?.into_iter().next()?;
        let (_, not_after) = pki::validity(&leaf).ok()?;
        (not_after - now > chrono::Duration::days(30)).then_some(())
    });
    if fresh.is_none() {
        let (key_pem, csr) = pki::new_node_key()?;
        let issued = identity
            .issuer
            .sign_web_csr(&csr, &names, now - chrono::Duration::hours(1), now + chrono::Duration::days(397))
            .map_err(|e| datum_host::exit::user(format!("web certificate for {}: {e}", names.join(", "))))?;
        datum_host::fs::write_private(&key, key_pem.as_bytes())?;
        datum_host::fs::write_private(&cert, issued.chain_pem.as_bytes())?;
        datum_host::fs::write_private(&named, wanted.as_bytes())?;
        tracing::info!("issued the dashboard's certificate for {} from the hub's CA", names.join(", "));
    }
    let chain = std::fs::read_to_string(&cert).with_context(|| format!("read {}", cert.display()))?;
    let key_pem = std::fs::read_to_string(&key).with_context(|| format!("read {}", key.display()))?;
    Ok((tls::web_server_config(&chain, &key_pem)?, fingerprint(&chain)?))
}

/// The dashboard being served, stopped by [`Running::stop`].
pub struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn stop(self) {
        self.refresher.abort();
        let _ = self.stop.send(());
        match self.task.await {
            Ok(Err(e)) => tracing::warn!("dashboard: {e}"),
            Err(e) => tracing::warn!("dashboard task: {e}"),
            Ok(Ok(())) => {}
        }
    }
}

/// Starts the dashboard on `addr` beside the sync listener: HTTPS (plain HTTP only on loopback with
/// `plain_http`), refused on a hub without people (anyone could read everything).
pub async fn start(
    ctx: &crate::context::Context,
    store: &Store,
    identity: &crate::identity::Identity,
    config: &crate::config::Config,
    addr: std::net::SocketAddr,
    clock: Clock,
) -> Result<Running> {
    use anyhow::Context as _;
    use datum_host::exit::user;
    if !store.users().await?.iter().any(|u| !u.disabled) {
        return Err(user(
            "the hub has no people yet: add the first with `datum-hub user add NAME --role hub-admin \
             --password-stdin` before serving the dashboard",
        ));
    }
    let tls = if config.settings.plain_http {
        web::check_plain_http(&addr)?;
        None
    } else {
        let (tls, fingerprint) = tls(&ctx.data, identity, config, clock())?;
        tracing::info!("dashboard certificate fingerprint (SHA-256) {fingerprint}");
        eprintln!("dashboard certificate fingerprint (SHA-256) {fingerprint}");
        Some(tls)
    };
    let app = app(store.clone(), &ctx.data, identity.name.clone(), config.settings.session_limits(), clock).await?;
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listen on {addr}"))?;
    let local = listener.local_addr()?;
    println!("dashboard on {}://{local}", if tls.is_some() { "https" } else { "http" });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let refresher = tokio::spawn(app.clone().refresh_forever());
    let task = tokio::spawn(web::serve(listener, router(app), tls, async {
        let _ = stopped.await;
    }));
    Ok(Running { stop, task, refresher })
}
