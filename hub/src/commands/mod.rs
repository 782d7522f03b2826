//! The hub's commands, one file per group: `init`, `site …` (sites and enrollment tokens), `asset list`,
//! `status` (cross-site reports); `serve` lives in `crate::serve`. Commands print view types, never store rows.

mod assets;
mod init;
mod sites;
mod status;

use anyhow::Result;
use datum_host::exit::Outcome;

use crate::cli::{AssetCommand, Command};
use crate::context::Context;

pub async fn run(ctx: Context, command: Command) -> Result<Outcome> {
    match command {
        Command::Init { name, id } => init::init(&ctx, &name, id.as_deref()).await,
        Command::Site { command } => sites::site(&ctx, command).await,
        Command::Serve { listen, no_udp, web_domain } => crate::serve::serve(&ctx, listen, !no_udp, web_domain).await,
        Command::Asset { command: AssetCommand::List { site, all, json } } => {
            assets::asset_list(&ctx, site, all, json).await
        }
        Command::Status { json } => status::status(&ctx, json).await,
    }
}
