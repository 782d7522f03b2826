//! `datum-hub template …`: standards written once at the hub — drafts (`add`), signed immutable versions
//! (`publish`), and which site runs which version with which parameters (`assign`, `unassign`) — and
//! `datum-hub compliance`: what every plant reports back.
//!
//! Published versions and assignments are records in documents only the hub writes (`hub/templates`,
//! `hub/to/<site-id>/templates`, see `datum_shared::rollout`), signed with the hub's publishing key; they reach
//! the plants with their next sync. A document is changed here as an edge changes its own: one automerge change
//! appended to the stored document, in one transaction (`Store::append_doc`), picked up by the next session.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use automerge::transaction::CommitOptions;
use automerge::{ActorId, Automerge};
use chrono::{DateTime, Utc};
use datum_host::cli::Json;
use datum_host::exit::{user, Outcome};
use datum_shared::document::{self, CommitInfo};
use datum_shared::ids::{DocId, SiteId};
use datum_shared::normalize::FingerprintKey;
use datum_shared::policy::Policy;
use datum_shared::rollout::{self, Assignment, Published, State, Summary, TemplateState};
use datum_shared::template::{Template, Version, MAX_TEMPLATE_BYTES};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::cli::TemplateCommand;
use crate::context::Context;
use crate::store::{DocPiece, DraftRow, SiteRow, Store};

pub(super) async fn template(ctx: &Context, command: TemplateCommand) -> Result<Outcome> {
    let store = ctx.store().await?;
    let result = match command {
        TemplateCommand::Add { file, json } => add(ctx, &store, &file, json).await,
        TemplateCommand::List(Json { json }) => list(&store, json).await,
        TemplateCommand::Show { id, json } => show(&store, &id, json).await,
        TemplateCommand::Publish { id, version } => publish(ctx, &store, &id, version.as_deref()).await,
        TemplateCommand::Assign { id, site, all, version, set } => {
            let sites = chosen_sites(&store, site.as_deref(), all).await?;
            assign(ctx, &store, &id, &sites, version.as_deref(), &set).await
        }
        TemplateCommand::Unassign { id, site, all } => {
            let sites = chosen_sites(&store, site.as_deref(), all).await?;
            unassign(ctx, &store, &id, &sites).await
        }
    };
    store.close().await;
    result
}

/// Who acts at the hub: the operating-system account running the command (hub users come with the dashboard).
fn operator() -> String {
    datum_host::process::login_of(datum_host::process::uid()).unwrap_or_else(|| "hub-operator".to_string())
}

/// The key secrets are fingerprinted with while a template's own examples are run at the hub (the examples'
/// results never depend on which key; each plant runs them again with its own).
fn snippet_key(ctx: &Context) -> Result<FingerprintKey> {
    let key = crate::identity::signing_key(&ctx.data)?;
    let mut h = Sha256::new();
    h.update(b"datum template examples v1");
    h.update(key.verifying_key().to_bytes());
    Ok(FingerprintKey(h.finalize().into()))
}

/// Reads and validates a template file, with its examples run.
fn read_template(ctx: &Context, file: &Path) -> Result<(Template, String)> {
    let meta = std::fs::metadata(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
    if !meta.is_file() || meta.len() > MAX_TEMPLATE_BYTES as u64 {
        return Err(user(format!("{}: not a template file of at most {MAX_TEMPLATE_BYTES} bytes", file.display())));
    }
    let text = std::fs::read_to_string(file).map_err(|e| user(format!("{}: {e}", file.display())))?;
    let template = Template::parse(&text).map_err(|e| user(format!("{}: {e}", file.display())))?;
    let wrong = template.check_snippets(&snippet_key(ctx)?);
    if !wrong.is_empty() {
        return Err(user(format!(
            "{}: rule examples do not give their stated results:\n  {}",
            file.display(),
            wrong.join("\n  ")
        )));
    }
    Ok((template, text))
}

/// A hub document as stored (an absent one is empty).
pub(crate) async fn load_doc(store: &Store, id: &DocId) -> Result<Automerge> {
    let chunks = store.doc_chunks(id.as_str()).await?;
    if chunks.is_empty() {
        return Ok(Automerge::new());
    }
    Automerge::load(&chunks.concat()).map_err(|e| anyhow!("stored document {id} is damaged: {e}"))
}

/// Records to write in one hub document: (collection, key, record).
pub(crate) type Puts = Vec<(&'static str, String, serde_json::Value)>;

/// Writes records into a hub document as one change, appended in one transaction. `false` when nothing changed.
pub(crate) async fn write_doc(
    store: &Store,
    node: &str,
    id: &DocId,
    info: &CommitInfo,
    puts: &Puts,
    now: DateTime<Utc>,
) -> Result<bool> {
    let mut doc = load_doc(store, id).await?.with_actor(ActorId::random());
    let before = doc.get_heads();
    let mut tx = doc.transaction();
    for (collection, key, record) in puts {
        document::put_record(&mut tx, collection, key, record).with_context(|| format!("write {collection}/{key}"))?;
    }
    let message = serde_json::to_string(info)?;
    let (hash, _) = tx.commit_with(CommitOptions::default().with_message(message).with_time(now.timestamp_millis()));
    let Some(hash) = hash else { return Ok(false) };
    let bytes = doc.save_after(&before);
    let heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    store
        .append_doc(&DocPiece {
            doc_id: id.as_str(),
            site_id: id.audience(),
            bytes: &bytes,
            heads: &heads,
            receipts: &[hash.to_string()],
            node,
            now,
        })
        .await?;
    Ok(true)
}

/// Every published version, by id then version (oldest first).
pub(crate) async fn published(store: &Store) -> Result<BTreeMap<String, Vec<Published>>> {
    let doc = load_doc(store, &rollout::published_doc()).await?;
    let mut out: BTreeMap<String, Vec<Published>> = BTreeMap::new();
    for (key, json) in document::collection_json(&doc, Published::COLLECTION)? {
        let p: Published = serde_json::from_value(json).with_context(|| format!("published template {key}"))?;
        out.entry(p.id.clone()).or_default().push(p);
    }
    for versions in out.values_mut() {
        versions.sort_by_key(|p| p.version.parse::<Version>().ok());
    }
    Ok(out)
}

/// A site's policy as the plant applies it: the built-in defaults with the `[policy]` and `[change]` tables of
/// the templates running there (the version each plant reported running, from the hub's own published
/// records), so the hub judges a site's intervals as the plant does (`status`, the evidence pack).
pub(crate) async fn site_policy(store: &Store, site_id: &SiteId) -> Result<Policy> {
    let assigned = assignments(store, site_id).await?;
    if assigned.is_empty() {
        return Ok(Policy::default());
    }
    let published = published(store).await?;
    let mut running: Vec<Template> = Vec::new();
    for id in assigned.iter().filter(|(_, a)| a.active).map(|(id, _)| id) {
        let Some(state) = store.record(TemplateState::COLLECTION, site_id, id).await? else { continue };
        let state: TemplateState = serde_json::from_str(&state).with_context(|| format!("reported state of {id}"))?;
        let Some(version) = state.running else { continue };
        let record = published.get(id).and_then(|v| v.iter().find(|p| p.version == version));
        if let Some(template) = record.and_then(|p| Template::parse(&p.body).ok()) {
            running.push(template);
        }
    }
    Ok(datum_shared::template::policy_of(&running))
}

/// The assignments of one site, by template id.
async fn assignments(store: &Store, site_id: &SiteId) -> Result<BTreeMap<String, Assignment>> {
    let doc = load_doc(store, &rollout::assignments_doc(site_id.as_str())).await?;
    document::collection_json(&doc, Assignment::COLLECTION)?
        .into_iter()
        .map(|(key, json)| {
            Ok((key.clone(), serde_json::from_value(json).with_context(|| format!("assignment {key}"))?))
        })
        .collect()
}

/// The enrolled sites a command means: one by name, or every enrolled site not revoked.
async fn chosen_sites(store: &Store, site: Option<&str>, all: bool) -> Result<Vec<(SiteRow, SiteId)>> {
    let rows = match (site, all) {
        (Some(name), false) => {
            let name = super::site_id_of(name);
            vec![store.site(&name).await?.ok_or_else(|| user(format!("no site named {name}")))?]
        }
        (None, true) => store.sites().await?.into_iter().filter(|s| s.revoked_at.is_none()).collect(),
        _ => return Err(user("name one site with --site, or every site with --all")),
    };
    let mut out = Vec::new();
    for row in rows {
        match (&row.site_id, &row.revoked_at) {
            (_, Some(_)) => return Err(user(format!("site {} is revoked", row.name))),
            (Some(id), None) => {
                let id = id.clone();
                out.push((row, id));
            }
            (None, None) if all => {}
            (None, None) => {
                return Err(user(format!("site {} has not enrolled yet (its id is not known)", row.name)));
            }
        }
    }
    if out.is_empty() {
        return Err(user("no enrolled site to assign to"));
    }
    Ok(out)
}

#[derive(Serialize)]
struct DraftView {
    id: String,
    version: String,
    title: String,
    sha256: String,
    rules: usize,
}

async fn add(ctx: &Context, store: &Store, file: &Path, json: bool) -> Result<Outcome> {
    let (template, text) = read_template(ctx, file)?;
    let version = template.version.to_string();
    if let Some(p) = published(store).await?.get(&template.id).and_then(|v| v.iter().find(|p| p.version == version)) {
        return Err(user(format!(
            "{}@{version} is published already (published versions never change; raise the version)",
            p.id
        )));
    }
    let row = DraftRow {
        id: template.id.clone(),
        version: version.clone(),
        title: template.title.clone(),
        sha256: rollout::body_hash(&text),
        body: text,
        added_at: ctx.now.to_rfc3339(),
    };
    store.put_draft(&row).await?;
    let view =
        DraftView { id: row.id.clone(), version, title: row.title, sha256: row.sha256, rules: template.rules.len() };
    if json {
        crate::commands::print_json(&view)?;
    } else {
        println!(
            "draft {}@{} stored ({} rules, sha256 {}); publish it with `datum-hub template publish {}`",
            view.id, view.version, view.rules, view.sha256, view.id
        );
    }
    Ok(Outcome::Clean)
}

#[derive(Serialize)]
struct TemplateView {
    id: String,
    title: String,
    /// Published versions, oldest first.
    published: Vec<String>,
    drafts: Vec<String>,
    /// Sites with an active assignment, and the version assigned there.
    assigned: BTreeMap<String, String>,
}

async fn overview(store: &Store) -> Result<Vec<TemplateView>> {
    let published = published(store).await?;
    let drafts = store.drafts().await?;
    let mut views: BTreeMap<String, TemplateView> = BTreeMap::new();
    fn entry<'a>(views: &'a mut BTreeMap<String, TemplateView>, id: &str, title: &str) -> &'a mut TemplateView {
        views.entry(id.to_string()).or_insert_with(|| TemplateView {
            id: id.to_string(),
            title: title.to_string(),
            published: Vec::new(),
            drafts: Vec::new(),
            assigned: BTreeMap::new(),
        })
    }
    for (id, versions) in &published {
        for p in versions {
            let v = entry(&mut views, id, &p.title);
            v.title = p.title.clone();
            v.published.push(p.version.clone());
        }
    }
    for d in &drafts {
        entry(&mut views, &d.id, &d.title).drafts.push(d.version.clone());
    }
    for site in store.sites().await? {
        let Some(site_id) = &site.site_id else { continue };
        for (id, a) in assignments(store, site_id).await? {
            if a.active {
                if let Some(v) = views.get_mut(&id) {
                    v.assigned.insert(site.name.clone(), a.version.clone());
                }
            }
        }
    }
    Ok(views.into_values().collect())
}

async fn list(store: &Store, json: bool) -> Result<Outcome> {
    let views = overview(store).await?;
    if json {
        crate::commands::print_json(&views)?;
        return Ok(Outcome::Clean);
    }
    if views.is_empty() {
        println!("no templates (add one with `datum-hub template add FILE`)");
        return Ok(Outcome::Clean);
    }
    let rows: Vec<Vec<String>> = views
        .iter()
        .map(|v| {
            vec![
                v.id.clone(),
                v.published.last().cloned().unwrap_or_else(|| "-".into()),
                if v.drafts.is_empty() { "-".into() } else { v.drafts.join(", ") },
                v.assigned.len().to_string(),
                v.title.clone(),
            ]
        })
        .collect();
    print!("{}", datum_shared::text::table(&["TEMPLATE", "PUBLISHED", "DRAFTS", "SITES", "TITLE"], &rows));
    Ok(Outcome::Clean)
}

/// One site's view of a template: what the hub assigned and what the plant reports.
#[derive(Serialize)]
struct SiteTemplate {
    site: String,
    assigned_version: String,
    active: bool,
    parameters: BTreeMap<String, String>,
    /// What the plant reported: its state of the template (`null` until it synced after the assignment).
    state: Option<TemplateState>,
    /// Its latest evaluation.
    compliance: Option<Summary>,
}

#[derive(Serialize)]
struct ShowView {
    id: String,
    title: String,
    versions: Vec<VersionView>,
    drafts: Vec<String>,
    sites: Vec<SiteTemplate>,
}

#[derive(Serialize)]
struct VersionView {
    version: String,
    sha256: String,
    published_at: String,
    published_by: String,
    enforcement: String,
}

/// Per site, the assignment of `id` (if any), the plant's reported state and latest summary.
async fn per_site(store: &Store, id: &str, only: Option<&str>) -> Result<Vec<SiteTemplate>> {
    let mut out = Vec::new();
    for site in store.sites().await? {
        let Some(site_id) = &site.site_id else { continue };
        if only.is_some_and(|o| o != site.name) {
            continue;
        }
        let Some(a) = assignments(store, site_id).await?.remove(id) else { continue };
        let state = reported::<TemplateState>(store, TemplateState::COLLECTION, site_id, id).await?;
        let compliance = reported::<Summary>(store, Summary::COLLECTION, site_id, id).await?;
        out.push(SiteTemplate {
            site: site.name.clone(),
            assigned_version: a.version,
            active: a.active,
            parameters: a.parameters,
            state,
            compliance,
        });
    }
    Ok(out)
}

/// Every record of one collection the plants reported, by (site id, key).
async fn reported_all<R: serde::de::DeserializeOwned>(
    store: &Store,
    collection: &str,
) -> Result<BTreeMap<(String, String), R>> {
    let mut out = BTreeMap::new();
    for (site_id, key, json) in store.records(collection, None).await? {
        let record = serde_json::from_str(&json).with_context(|| format!("reported {collection}/{key}"))?;
        out.insert((site_id, key), record);
    }
    Ok(out)
}

/// A record a plant reported (from the hub's projection of its documents).
async fn reported<R: serde::de::DeserializeOwned>(
    store: &Store,
    collection: &str,
    site_id: &SiteId,
    key: &str,
) -> Result<Option<R>> {
    match store.record(collection, site_id, key).await? {
        None => Ok(None),
        Some(json) => Ok(Some(serde_json::from_str(&json).with_context(|| format!("reported {collection}/{key}"))?)),
    }
}

async fn show(store: &Store, id: &str, json: bool) -> Result<Outcome> {
    let published = published(store).await?;
    let drafts: Vec<String> = store.drafts().await?.into_iter().filter(|d| d.id == id).map(|d| d.version).collect();
    let versions = published.get(id).cloned().unwrap_or_default();
    if versions.is_empty() && drafts.is_empty() {
        return Err(user(format!("no template {id} (see `datum-hub template list`)")));
    }
    let view = ShowView {
        id: id.to_string(),
        title: versions.last().map(|p| p.title.clone()).unwrap_or_default(),
        versions: versions
            .iter()
            .map(|p| VersionView {
                version: p.version.clone(),
                sha256: p.sha256.clone(),
                published_at: p.published_at.to_rfc3339(),
                published_by: p.published_by.clone(),
                enforcement: format!("{:?}", p.enforcement).to_lowercase(),
            })
            .collect(),
        drafts,
        sites: per_site(store, id, None).await?,
    };
    if json {
        crate::commands::print_json(&view)?;
        return Ok(Outcome::Clean);
    }
    println!("{} — {}", view.id, view.title);
    for v in &view.versions {
        println!(
            "  {} published {} by {} ({}, sha256 {})",
            v.version, v.published_at, v.published_by, v.enforcement, v.sha256
        );
    }
    for d in &view.drafts {
        println!("  {d} draft");
    }
    let rows: Vec<Vec<String>> = view.sites.iter().map(site_row).collect();
    if !rows.is_empty() {
        println!();
        print!("{}", datum_shared::text::table(&["SITE", "ASSIGNED", "AT THE SITE", "RESULT"], &rows));
    }
    Ok(Outcome::Clean)
}

fn site_row(s: &SiteTemplate) -> Vec<String> {
    let assigned = if s.active { s.assigned_version.clone() } else { format!("{} (unassigned)", s.assigned_version) };
    let state = match &s.state {
        None => "not reported yet".to_string(),
        Some(st) => match &st.reason {
            Some(why) => format!("{} {} ({why})", st.version, st.state.as_str()),
            None => format!("{} {}", st.version, st.state.as_str()),
        },
    };
    let result = match &s.compliance {
        None => "-".to_string(),
        Some(c) => c.line(),
    };
    vec![s.site.clone(), assigned, state, result]
}

async fn publish(ctx: &Context, store: &Store, id: &str, version: Option<&str>) -> Result<Outcome> {
    let wanted = version.map(|v| v.parse::<Version>().map_err(|e| user(format!("--version {v}: {e}")))).transpose()?;
    let drafts: Vec<DraftRow> = store.drafts().await?.into_iter().filter(|d| d.id == id).collect();
    let draft = match wanted {
        Some(v) => drafts.into_iter().find(|d| d.version.parse::<Version>().ok() == Some(v)),
        None => drafts.into_iter().max_by_key(|d| d.version.parse::<Version>().ok()),
    }
    .ok_or_else(|| {
        user(format!(
            "no draft of {id}{} (add the file with `datum-hub template add FILE` first)",
            version.map(|v| format!(" version {v}")).unwrap_or_default()
        ))
    })?;
    let template = Template::parse(&draft.body).map_err(|e| user(format!("the draft of {id}: {e}")))?;
    let wrong = template.check_snippets(&snippet_key(ctx)?);
    if !wrong.is_empty() {
        return Err(user(format!("{id}: rule examples do not give their stated results: {}", wrong.join("; "))));
    }
    let all = published(store).await?;
    let earlier = all.get(id).cloned().unwrap_or_default();
    if let Some(newest) = earlier.last() {
        if newest.version.parse::<Version>().ok() >= Some(template.version) {
            return Err(user(format!(
                "{id} {} is published already; a new version must be higher (published versions never change)",
                newest.version
            )));
        }
    }
    let identity = crate::identity::load(&ctx.data)?;
    let key = crate::identity::signing_key(&ctx.data)?;
    let by = operator();
    let p = Published::sign(&template, &draft.body, ctx.now, &by, &key);
    let info = CommitInfo {
        op: "template.publish".into(),
        actor: by.clone(),
        subject: Published::key(&p.id, &p.version),
        reason: None,
    };
    let record = serde_json::to_value(&p)?;
    write_doc(
        store,
        &identity.name,
        &rollout::published_doc(),
        &info,
        &vec![(Published::COLLECTION, info.subject.clone(), record)],
        ctx.now,
    )
    .await?;
    store.delete_draft(&draft.id, &draft.version).await?;
    println!("published {}@{} (sha256 {}), signed by the hub's publishing key", p.id, p.version, p.sha256);
    // Where an earlier version is assigned, the new one supersedes it with the site's parameters.
    let mut skipped = Vec::new();
    for site in store.sites().await? {
        let (Some(site_id), None) = (&site.site_id, &site.revoked_at) else { continue };
        let Some(old) = assignments(store, site_id).await?.remove(id) else { continue };
        if !old.active {
            continue;
        }
        if let Err(why) = template.values(&old.parameters) {
            skipped.push(format!("{}: {why}", site.name));
            continue;
        }
        let a = Assignment { version: p.version.clone(), assigned_at: ctx.now, assigned_by: by.clone(), ..old };
        write_assignment(store, &identity.name, site_id, a, &key, ctx.now).await?;
        println!("  rolled out to site {} (was {})", site.name, old_version_of(&earlier, id));
    }
    if !skipped.is_empty() {
        eprintln!(
            "not rolled out where the site's parameters do not fit the new version (assign it with --set):\n  {}",
            skipped.join("\n  ")
        );
        return Ok(Outcome::Findings);
    }
    Ok(Outcome::Clean)
}

fn old_version_of(earlier: &[Published], id: &str) -> String {
    earlier.last().map(|p| format!("{id}@{}", p.version)).unwrap_or_else(|| "none".into())
}

async fn write_assignment(
    store: &Store,
    node: &str,
    site_id: &SiteId,
    a: Assignment,
    key: &ed25519_dalek::SigningKey,
    now: DateTime<Utc>,
) -> Result<bool> {
    let a = a.signed(site_id.as_str(), key);
    let info = CommitInfo {
        op: if a.active { "template.assign".into() } else { "template.unassign".into() },
        actor: a.assigned_by.clone(),
        subject: format!("{}@{}", a.template, a.version),
        reason: None,
    };
    let record = serde_json::to_value(&a)?;
    write_doc(
        store,
        node,
        &rollout::assignments_doc(site_id.as_str()),
        &info,
        &vec![(Assignment::COLLECTION, a.template.clone(), record)],
        now,
    )
    .await
}

async fn assign(
    ctx: &Context,
    store: &Store,
    id: &str,
    sites: &[(SiteRow, SiteId)],
    version: Option<&str>,
    set: &[String],
) -> Result<Outcome> {
    let all = published(store).await?;
    let versions = all
        .get(id)
        .ok_or_else(|| user(format!("{id} is not published (publish it first: `datum-hub template publish {id}`)")))?;
    let p = match version {
        None => versions.last().expect("a published template has a version"),
        Some(v) => {
            let want = v.parse::<Version>().map_err(|e| user(format!("--version {v}: {e}")))?;
            versions
                .iter()
                .find(|p| p.version.parse::<Version>().ok() == Some(want))
                .ok_or_else(|| user(format!("{id} {v} is not published")))?
        }
    };
    let template = Template::parse(&p.body).map_err(|e| anyhow!("the published {id}@{}: {e}", p.version))?;
    let given = datum_shared::template::parse_settings(set).map_err(user)?;
    let identity = crate::identity::load(&ctx.data)?;
    let key = crate::identity::signing_key(&ctx.data)?;
    let by = operator();
    // Check every site first: all or nothing.
    let mut planned = Vec::new();
    for (site, site_id) in sites {
        let mut parameters = match assignments(store, site_id).await?.remove(id) {
            Some(old) => old.parameters,
            None => BTreeMap::new(),
        };
        parameters.extend(given.clone());
        template.values(&parameters).map_err(|e| user(format!("site {}: {e}", site.name)))?;
        planned.push((site, site_id, parameters));
    }
    for (site, site_id, parameters) in planned {
        let a = Assignment {
            template: id.to_string(),
            version: p.version.clone(),
            parameters,
            active: true,
            assigned_at: ctx.now,
            assigned_by: by.clone(),
            signature: String::new(),
        };
        write_assignment(store, &identity.name, site_id, a, &key, ctx.now).await?;
        println!("assigned {id}@{} to site {} (reaches it with its next sync)", p.version, site.name);
    }
    Ok(Outcome::Clean)
}

async fn unassign(ctx: &Context, store: &Store, id: &str, sites: &[(SiteRow, SiteId)]) -> Result<Outcome> {
    let identity = crate::identity::load(&ctx.data)?;
    let key = crate::identity::signing_key(&ctx.data)?;
    let by = operator();
    let mut any = false;
    for (site, site_id) in sites {
        let Some(old) = assignments(store, site_id).await?.remove(id).filter(|a| a.active) else { continue };
        let a = Assignment { active: false, assigned_at: ctx.now, assigned_by: by.clone(), ..old };
        write_assignment(store, &identity.name, site_id, a, &key, ctx.now).await?;
        println!("withdrew {id} from site {}", site.name);
        any = true;
    }
    if !any {
        return Err(user(format!(
            "{id} is not assigned to {}",
            if sites.len() == 1 { "that site" } else { "any site" }
        )));
    }
    Ok(Outcome::Clean)
}

/// One site × template line of `datum-hub compliance`.
#[derive(Serialize)]
pub(crate) struct ComplianceRow {
    pub(crate) site: String,
    pub(crate) template: String,
    /// The version the hub assigned.
    pub(crate) assigned_version: String,
    /// The state the plant reported (`null`: not reported yet).
    pub(crate) state: Option<String>,
    /// The version the plant's state is about: the assigned one once it arrived (active or refused).
    pub(crate) site_version: Option<String>,
    /// The version the plant evaluates: the assigned one once active, else the earlier one still running.
    pub(crate) running: Option<String>,
    pub(crate) reason: Option<String>,
    /// The version of the latest evaluation reported, and its results.
    pub(crate) evaluated_version: Option<String>,
    pub(crate) evaluated_at: Option<String>,
    pub(crate) assets: u64,
    pub(crate) counts: rollout::Counts,
    pub(crate) compliant: Option<bool>,
    pub(crate) failing: Vec<rollout::Failing>,
    pub(crate) unlisted: u64,
    /// Non-compliant pairs an approved waiver at the plant excuses until it expires (shown apart).
    pub(crate) waived: Vec<rollout::Failing>,
}

/// `datum-hub compliance`: per site and template, the version assigned, the plant's state of it, the counts
/// of its latest evaluation and the failing (asset, rule) pairs; exit 1 when any site is non-compliant or
/// refused a template.
pub(super) async fn compliance(
    ctx: &Context,
    site: Option<&str>,
    template: Option<&str>,
    json: bool,
) -> Result<Outcome> {
    let store = ctx.store().await?;
    let result = compliance_rows(&store, site, template).await;
    store.close().await;
    let rows = result?;
    let failing =
        rows.iter().any(|r| r.compliant == Some(false) || r.state.as_deref() == Some(State::Rejected.as_str()));
    if json {
        crate::commands::print_json(&rows)?;
    } else if rows.is_empty() {
        println!("no template is assigned{}", site.map(|s| format!(" to site {s}")).unwrap_or_default());
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                let state = match (&r.state, &r.site_version, &r.running) {
                    (Some(s), Some(v), Some(run)) if run != v => format!("{v} {s}, runs {run}"),
                    (Some(s), Some(v), _) => format!("{v} {s}"),
                    _ => "not reported yet".into(),
                };
                let result = match r.compliant {
                    None => "-".to_string(),
                    Some(ok) => format!(
                        "{}: {} compliant, {} non-compliant, {} errors, {} n/a, {} waived",
                        if ok { "compliant" } else { "NON-COMPLIANT" },
                        r.counts.compliant,
                        r.counts.non_compliant,
                        r.counts.error,
                        r.counts.not_applicable,
                        r.counts.waived
                    ),
                };
                vec![r.site.clone(), r.template.clone(), r.assigned_version.clone(), state, result]
            })
            .collect();
        print!("{}", datum_shared::text::table(&["SITE", "TEMPLATE", "ASSIGNED", "AT THE SITE", "RESULT"], &table));
        for r in &rows {
            if let Some(reason) = &r.reason {
                println!("\n{} refused {}: {reason}", r.site, r.template);
            }
            if !r.failing.is_empty() {
                println!("\n{} {} — failing:", r.site, r.template);
                for f in &r.failing {
                    let at = f.config.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
                    println!("  {} {}{at}: {} {}", f.asset, f.rule, f.result, f.detail);
                }
                if r.unlisted > 0 {
                    println!("  … and {} more", r.unlisted);
                }
            }
            if !r.waived.is_empty() {
                println!("\n{} {} — waived:", r.site, r.template);
                for f in &r.waived {
                    let at = f.config.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
                    println!("  {} {}{at}: {}", f.asset, f.rule, f.detail);
                }
            }
        }
    }
    Ok(Outcome::from_findings(failing))
}

pub(crate) async fn compliance_rows(
    store: &Store,
    site: Option<&str>,
    template: Option<&str>,
) -> Result<Vec<ComplianceRow>> {
    let only = site.map(super::site_id_of);
    if let Some(name) = &only {
        store.site(name).await?.ok_or_else(|| user(format!("no site named {name}")))?;
    }
    // What every plant reported, read once per collection (not once per site and template).
    let states: BTreeMap<(String, String), TemplateState> = reported_all(store, TemplateState::COLLECTION).await?;
    let summaries: BTreeMap<(String, String), Summary> = reported_all(store, Summary::COLLECTION).await?;
    let mut ids: BTreeSet<String> = BTreeSet::new();
    let mut rows = Vec::new();
    for s in store.sites().await? {
        let Some(site_id) = &s.site_id else { continue };
        for (id, a) in assignments(store, site_id).await? {
            ids.insert(id.clone());
            if !a.active || only.as_deref().is_some_and(|o| o != s.name) || template.is_some_and(|t| t != id) {
                continue;
            }
            let key = (site_id.as_str().to_string(), id.clone());
            let (state, c) = (states.get(&key), summaries.get(&key));
            rows.push(ComplianceRow {
                site: s.name.clone(),
                template: id,
                assigned_version: a.version,
                state: state.map(|st| st.state.as_str().to_string()),
                site_version: state.map(|st| st.version.clone()),
                running: state.and_then(|st| st.running.clone()),
                reason: state.and_then(|st| st.reason.clone()),
                evaluated_version: c.map(|c| c.version.clone()),
                evaluated_at: c.map(|c| c.evaluated_at.to_rfc3339()),
                assets: c.map_or(0, |c| c.assets),
                counts: c.map(|c| c.counts.clone()).unwrap_or_default(),
                compliant: c.map(Summary::compliant),
                failing: c.map(|c| c.failing.clone()).unwrap_or_default(),
                unlisted: c.map_or(0, |c| c.unlisted),
                waived: c.map(|c| c.waived.clone()).unwrap_or_default(),
            });
        }
    }
    if let Some(t) = template {
        if rows.is_empty() && !ids.contains(t) {
            return Err(user(format!("template {t} is not assigned to any site")));
        }
    }
    rows.sort_by(|a, b| (&a.site, &a.template).cmp(&(&b.site, &b.template)));
    Ok(rows)
}
