//! Loads the shared `View` (reports' read-only assembly of a site) from this edge's projection.

use anyhow::Result;
use datum_shared::change::ChangeEvent;
pub use datum_shared::view::{version_ref, View};

use crate::site::Site;

/// Everything reports need, from the projection.
pub async fn load(site: &Site) -> Result<View> {
    let mut rows = std::collections::HashMap::new();
    for collection in datum_shared::view::COLLECTIONS {
        rows.insert(collection, site.store.records(collection).await?);
    }
    Ok(View::from_rows(|c| rows.get(c).cloned().unwrap_or_default())?)
}

/// Only the change requests (for `change list`).
pub async fn load_changes(site: &Site) -> Result<View> {
    let mut view = View::default();
    view.add_change_events(site.list::<ChangeEvent>(ChangeEvent::COLLECTION).await?);
    Ok(view)
}
