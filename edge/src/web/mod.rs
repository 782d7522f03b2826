//! `datum-edge serve`: the plant's workspace in the browser and its JSON API.
//!
//! The scaffolding (serving, headers, sessions, sign-in, CSRF) is `datum_host::web`, shared with the hub; this
//! module holds the edge's routes. Every handler identifies the person, authorizes the action with
//! `datum_shared::identity::authorize`, opens the site (a reader without the lock, or a writer that takes it for
//! the request) and calls the same functions as the command line, so the rules are the CLI's.

mod api;
mod config;

pub use config::{HUB_WEB_CERT, HUB_WEB_KEY};
mod pages;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::Router;
use chrono::Utc;
use datum_host::auth::{AuthStore, SessionLimits};
use datum_host::exit::{user, Outcome, UserError};
use datum_host::web::{self, Auth, Clock, Directory, Identity, WebError};
use datum_shared::identity::{authorize, Action, User};

use crate::commands::Context;
use crate::site::{Access, Site};

/// Largest capture upload (the blob store takes any size; this bounds one request).
pub const MAX_UPLOAD: usize = 256 * 1024 * 1024;

/// The users of the site, read from its projection on each request (a change of roles or a disabled account
/// takes effect at once).
#[derive(Clone)]
pub struct EdgeDirectory {
    data: Arc<PathBuf>,
    title: String,
    clock: Clock,
}

impl Directory for EdgeDirectory {
    async fn user(&self, name: &str) -> Result<Option<User>> {
        let site = Site::open_as(&self.data, "", (self.clock)(), Access::Read).await?;
        let found = site.get::<User>(User::COLLECTION, name).await;
        site.close().await;
        found
    }

    fn title(&self) -> String {
        self.title.clone()
    }

    fn links(&self, user: &User) -> Vec<(&'static str, &'static str)> {
        let mut links = vec![
            ("Home", "/"),
            ("Assets", "/assets"),
            ("Drift", "/drift"),
            ("Changes", "/changes"),
            ("Audit", "/audit"),
        ];
        if authorize(user, Action::ExportEvidence).is_ok() {
            links.push(("Evidence", "/evidence"));
        }
        links
    }
}

/// What every edge handler shares.
#[derive(Clone)]
pub struct App {
    pub data: Arc<PathBuf>,
    pub auth: Auth<EdgeDirectory>,
    pub drill: bool,
}

impl App {
    pub fn now(&self) -> chrono::DateTime<Utc> {
        self.auth.now()
    }

    /// Identifies the person and checks the action.
    pub async fn allow(
        &self,
        headers: &axum::http::HeaderMap,
        method: &axum::http::Method,
        form_csrf: Option<&str>,
        action: Action,
    ) -> Result<Identity, WebError> {
        self.auth.allow(headers, method, form_csrf, action).await
    }

    /// The site for reading: no lock, one consistent snapshot.
    pub async fn read(&self) -> Result<Site, WebError> {
        let mut site = Site::open_as(&self.data, "", self.now(), Access::Read).await.map_err(internal)?;
        crate::commands::templates::use_policy(&mut site).await;
        Ok(site)
    }

    /// The site for writing, acting as `who`: takes the data-directory lock for the request.
    pub async fn write(&self, who: &Identity) -> Result<Site, WebError> {
        let mut site = Site::open_as(&self.data, &who.user.name, self.now(), Access::Write).await.map_err(domain)?;
        site.auth = Some(who.auth);
        site.drill = self.drill;
        crate::commands::templates::use_policy(&mut site).await;
        Ok(site)
    }
}

/// An unexpected failure: logged, shown as a 500 without detail.
pub fn internal(e: anyhow::Error) -> WebError {
    WebError::Internal(format!("{e:#}"))
}

/// A domain refusal (the reducer, a bad value) is the person's to fix: 409 with the reason; anything else 500.
pub fn domain(e: anyhow::Error) -> WebError {
    match e.downcast_ref::<UserError>() {
        Some(u) if u.0.contains("does not exist") => WebError::NotFound(u.0.clone()),
        Some(u) => WebError::Conflict(u.0.clone()),
        None => internal(e),
    }
}

/// The whole router of the edge's workspace and API.
pub fn router(app: App) -> Router {
    let auth_routes = web::auth_routes::<EdgeDirectory>().with_state(app.auth.clone());
    let uploads = Router::new()
        .route("/api/v1/assets/{name}/captures", axum::routing::post(api::post_capture))
        .route("/assets/{name}/captures", axum::routing::post(pages::post_capture))
        .route("/api/v1/restore-tests", axum::routing::post(api::post_restore_test))
        .route("/backups", axum::routing::post(pages::post_restore_test))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD));
    Router::new()
        .merge(api::routes())
        .merge(pages::routes())
        .merge(uploads)
        .with_state(app)
        .merge(auth_routes)
        .layer(DefaultBodyLimit::max(web::MAX_BODY))
        .layer(middleware::from_fn(web::security_headers))
}

/// Builds the app for a data directory.
pub async fn app(data: &Path, limits: SessionLimits, clock: Clock, drill: bool) -> Result<App> {
    let site = Site::open_as(data, "", clock(), Access::Write).await?;
    let title = site.info.display_name.clone().unwrap_or_else(|| site.info.name.clone());
    let dir = site.dir.clone();
    site.close().await;
    let store = AuthStore::open(&dir).await?;
    let data = Arc::new(dir);
    let directory = EdgeDirectory { data: data.clone(), title, clock: clock.clone() };
    Ok(App { data, auth: Auth { store, directory, limits, clock }, drill })
}

pub async fn serve(ctx: &Context, listen: Option<SocketAddr>, config_file: Option<PathBuf>) -> Result<Outcome> {
    let config = config::load(config_file.as_deref())?;
    let data = config.data.clone().unwrap_or_else(|| ctx.data.clone());
    let listen = listen.or(config.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8443)));
    let tls = if config.web.plain_http {
        web::check_plain_http(&listen)?;
        None
    } else {
        let (config, fingerprint) = config::tls(&data, &config)?;
        tracing::info!("web certificate fingerprint (SHA-256) {fingerprint}");
        eprintln!("web certificate fingerprint (SHA-256) {fingerprint}");
        Some(config)
    };
    // Who may act: the service refuses to start on a site without users (anyone could do anything).
    {
        let site = Site::open_as(&data, &ctx.actor, ctx.now, Access::Write).await?;
        let any = crate::commands::users::users(&site).await?;
        site.close().await;
        if any.is_empty() {
            return Err(user(
                "this site has no users: add the first site-admin with `datum-edge user add NAME --role \
                 site-admin --password-stdin` before serving",
            ));
        }
    }
    let clock: Clock = if ctx.drill {
        let fixed = ctx.now;
        Arc::new(move || fixed)
    } else {
        Arc::new(Utc::now)
    };
    let app = app(&data, config.web.session_limits(), clock, ctx.drill).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listen on {listen}"))?;
    let local = listener.local_addr()?;
    println!("serving {} on {}://{local}", app.auth.directory.title(), if tls.is_some() { "https" } else { "http" });
    if crate::commands::federation::enrolled(&data) && config.sync {
        let sync_ctx = Context {
            data: data.clone(),
            actor: ctx.actor.clone(),
            typed_actor: false,
            os_login: ctx.os_login.clone(),
            token: None,
            now: ctx.now,
            drill: ctx.drill,
        };
        tokio::spawn(async move {
            let mode = datum_host::net::transport::Mode::Auto;
            if let Err(e) = crate::commands::federation::sync(
                &sync_ctx,
                false,
                false,
                mode,
                std::time::Duration::from_secs(5),
                false,
            )
            .await
            {
                tracing::error!("continuous sync stopped: {e:#}");
            }
        });
    }
    // The command line beside the service: commands act as their caller's OS account (peer credentials).
    let socket = match &config.socket {
        Some(path) => {
            let listener = crate::broker::listen(path)?;
            println!("commands on this machine go through {}", path.display());
            tokio::spawn(crate::broker::run(listener, data.clone()));
            Some(path.clone())
        }
        None => None,
    };
    datum_host::process::notify_ready();
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match &mut term {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminated => {}
        }
    };
    let served = web::serve(listener, router(app), tls, shutdown).await;
    if let Some(path) = socket {
        let _ = std::fs::remove_file(path);
    }
    served?;
    Ok(Outcome::Clean)
}

/// A response body read from an open file in 64 KiB pieces (a download is never whole in memory).
pub struct FileBody {
    file: tokio::fs::File,
    buf: Vec<u8>,
}

impl FileBody {
    pub fn new(file: tokio::fs::File) -> FileBody {
        FileBody { file, buf: vec![0; 64 * 1024] }
    }
}

impl http_body::Body for FileBody {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        use tokio::io::AsyncRead;
        let this = self.get_mut();
        let mut read = tokio::io::ReadBuf::new(&mut this.buf);
        match std::pin::Pin::new(&mut this.file).poll_read(cx, &mut read) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Some(Err(e))),
            std::task::Poll::Ready(Ok(())) if read.filled().is_empty() => std::task::Poll::Ready(None),
            std::task::Poll::Ready(Ok(())) => {
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::copy_from_slice(read.filled())))))
            }
        }
    }
}
