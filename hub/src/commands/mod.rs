//! The hub's commands, one file per group: `init`, `site …` (sites and enrollment tokens), `asset list`,
//! `status` (cross-site reports), `report` (evidence packs), `template …` and `compliance` (shared templates), `user …` and `token …` (the hub's people); `serve` lives in `crate::serve`. Commands print view types, never store rows.

mod assets;
pub(crate) mod central;
mod init;
pub(crate) mod overview;
mod report;
mod sites;
mod status;
pub(crate) mod templates;
mod users;

use anyhow::Result;
use datum_host::cli::Json;
use datum_host::exit::Outcome;
use datum_host::output::print_json;

use crate::cli::{AssetCommand, Command};
use crate::context::Context;

pub async fn run(ctx: Context, command: Command) -> Result<Outcome> {
    match command {
        Command::Init { name, id } => init::init(&ctx, &name, id.as_deref()).await,
        Command::User { command } => users::people(&ctx, users::People::User(command)).await,
        Command::Token { command } => users::people(&ctx, users::People::Token(command)).await,
        Command::Site { command } => sites::site(&ctx, command).await,
        Command::Serve { listen, no_udp, web_domain, web, config } => {
            crate::serve::serve(&ctx, crate::serve::Options { listen, no_udp, web_domain, web, config }).await
        }
        Command::Asset { command: AssetCommand::List { site, all, json } } => {
            assets::asset_list(&ctx, site, all, json).await
        }
        Command::Status(Json { json }) => status::status(&ctx, json).await,
        Command::Template { command } => templates::template(&ctx, command).await,
        Command::Compliance { site, template, json } => {
            templates::compliance(&ctx, site.as_deref(), template.as_deref(), json).await
        }
        Command::Report { check: Some(datum_host::cli::ReportCmd::Verify { dir, json }), .. } => {
            datum_host::evidence::verify_command(&dir, json)
        }
        Command::Report { check: None, site, all: _, period: datum_host::cli::Period { from, to }, out, zip } => {
            let out = out.ok_or_else(|| datum_host::exit::user("--out DIR is required"))?;
            report::report(&ctx, site, from.as_deref(), to.as_deref(), &out, zip).await
        }
    }
}

/// The identifier a site is known by, from its identifier or its name as people say it ("Werk Süd").
fn site_id_of(name: &str) -> String {
    datum_shared::ids::NamedId::new("site", name, None).map(|n| n.id.to_string()).unwrap_or_else(|_| name.to_string())
}
