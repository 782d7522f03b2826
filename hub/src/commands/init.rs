//! `datum-hub init`: the hub's database, private CA, TLS certificate and name.

use anyhow::{Context as _, Result};
use datum_host::exit::{user, Outcome};
use datum_shared::ids::NamedId;

use crate::context::{Context, DATABASE_URL_FILE, DB_FILE};
use crate::identity::{self, display_fingerprint};
use crate::store::Store;

pub(super) async fn init(ctx: &Context, display: &str, id: Option<&str>) -> Result<Outcome> {
    let named = NamedId::new("hub", display, id).map_err(user)?;
    let name = named.id.as_str();
    let data = &ctx.data;
    if data.join(DB_FILE).exists() || data.join("identity/root.pem").exists() {
        return Err(user(format!("{} already holds a hub", data.display())));
    }
    std::fs::create_dir_all(data).with_context(|| format!("create {}", data.display()))?;
    // The database first: a wrong --database URL must fail before any key is made.
    let store = Store::open(ctx.database.as_deref(), &data.join(DB_FILE), true).await.context("create the database")?;
    if store.meta("hub_name").await?.is_some() {
        return Err(user("that database already belongs to a hub; give each hub its own database"));
    }
    let id = identity::create(data, name, ctx.now)?;
    if let Some(url) = &ctx.database {
        datum_host::fs::write_private(&data.join(DATABASE_URL_FILE), url.as_bytes())?;
    }
    store.set_meta("hub_name", name).await?;
    if let Some(display) = &named.display {
        store.set_meta("hub_display_name", display).await?;
    }
    store.set_meta("store_id", &hex::encode(rand::random::<[u8; 8]>())).await?;
    store.close().await;
    match &named.display {
        Some(display) => println!("hub {display} (identifier {name}) created in {}", data.display()),
        None => println!("hub {name} created in {}", data.display()),
    }
    println!("hub fingerprint: {}", display_fingerprint(&id.fingerprint));
    Ok(Outcome::Clean)
}
