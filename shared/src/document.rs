//! The document schema: how records are laid out in automerge documents, and how they come back out.
//!
//! Every document's root is a map of *collections* (`assets`, `versions`, `change_events`…); each collection
//! maps a record key to a record; a record is a flat map of scalar fields. Nested values (lists, maps) are
//! stored as one JSON string under `<field>~json`, because field-level merging inside them is not wanted and
//! automerge writes are expensive per op (see `../shared/notes/field-notes.md`).
//!
//! Which document holds what (ids from `ids::DocId`; `<p>` is a period):
//!
//! | document              | collections                    | writer |
//! |-----------------------|--------------------------------|--------|
//! | `site/<id>/site`      | `site`                         | site   |
//! | `site/<id>/inventory` | `assets`                       | site   |
//! | `site/<id>/configs/<YYYY-MM>` | `versions`, `checks`   | site   |
//! | `site/<id>/baselines` | `baselines`, `approvals`       | site   |
//! | `site/<id>/changes/<YYYY>` | `change_events`           | site   |
//! | `site/<id>/records/<YYYY>` | `restore_tests`, `reviews`| site   |
//! | `hub/...`             | (templates, central approvals) | hub    |
//!
//! Periods keep each document bounded to a few thousand records. Records are written field by field and only
//! fields whose value changed are written, so an edit is a few ops, and concurrent edits of different fields
//! merge.

use automerge::transaction::Transactable;
use std::collections::HashMap;

use automerge::{hydrate, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};
use chrono::{DateTime, Datelike, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// Suffix of a field holding a nested value as JSON text.
const JSON_SUFFIX: &str = "~json";

#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("{collection}/{key}: field {field} holds invalid JSON: {error}")]
    BadNestedJson { collection: String, key: String, field: String, error: String },
    #[error("{collection}/{key}: record does not match the schema: {error}")]
    Schema { collection: String, key: String, error: String },
    #[error("record {collection}/{key} is not a JSON object")]
    NotAnObject { collection: String, key: String },
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
}

/// The month period of configuration documents (`2026-11`).
pub fn month_period(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", at.year(), at.month())
}

/// The year period of change and record documents (`2026`).
pub fn year_period(at: DateTime<Utc>) -> String {
    format!("{:04}", at.year())
}

/// What a commit did, stored as the automerge change message so the history explains itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// The operation, e.g. `asset.add`, `config.capture`, `change.approve`.
    pub op: String,
    pub actor: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Finds a collection map at the root, creating it when missing.
fn collection_obj<T: Transactable>(tx: &mut T, collection: &str) -> Result<ObjId, DocError> {
    match tx.get(ROOT, collection)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Ok(tx.put_object(ROOT, collection, ObjType::Map)?),
    }
}

fn to_scalar(value: &Json) -> Option<ScalarValue> {
    match value {
        Json::Null => None,
        Json::Bool(b) => Some(ScalarValue::Boolean(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(ScalarValue::Int(i))
            } else if let Some(u) = n.as_u64() {
                Some(ScalarValue::Uint(u))
            } else {
                n.as_f64().map(ScalarValue::F64)
            }
        }
        Json::String(s) => Some(ScalarValue::Str(s.as_str().into())),
        Json::Array(_) | Json::Object(_) => Some(ScalarValue::Str(value.to_string().into())),
    }
}

fn from_scalar(value: &ScalarValue) -> Option<Json> {
    match value {
        ScalarValue::Str(s) => Some(Json::String(s.to_string())),
        ScalarValue::Int(i) => Some(Json::from(*i)),
        ScalarValue::Uint(u) => Some(Json::from(*u)),
        ScalarValue::F64(f) => serde_json::Number::from_f64(*f).map(Json::Number),
        ScalarValue::Boolean(b) => Some(Json::Bool(*b)),
        ScalarValue::Timestamp(t) => Some(Json::from(*t)),
        ScalarValue::Counter(_) | ScalarValue::Bytes(_) | ScalarValue::Unknown { .. } | ScalarValue::Null => None,
    }
}

/// The automerge field name and value for one JSON field.
fn field_name(key: &str, value: &Json) -> String {
    if matches!(value, Json::Array(_) | Json::Object(_)) {
        format!("{key}{JSON_SUFFIX}")
    } else {
        key.to_string()
    }
}

/// Writes `record` (a serializable struct) at `collection/key`, writing only fields that changed and deleting
/// fields that are gone. Returns whether anything was written.
pub fn put_record<T: Transactable, R: Serialize>(
    tx: &mut T,
    collection: &str,
    key: &str,
    record: &R,
) -> Result<bool, DocError> {
    let json = serde_json::to_value(record).map_err(|e| DocError::Schema {
        collection: collection.into(),
        key: key.into(),
        error: e.to_string(),
    })?;
    let Json::Object(fields) = json else {
        return Err(DocError::NotAnObject { collection: collection.into(), key: key.into() });
    };
    let coll = collection_obj(tx, collection)?;
    let mut wanted: Vec<(String, ScalarValue)> = Vec::with_capacity(fields.len());
    for (k, v) in &fields {
        if let Some(scalar) = to_scalar(v) {
            wanted.push((field_name(k, v), scalar));
        }
    }
    let (obj, existing) = match tx.get(&coll, key)? {
        Some((Value::Object(ObjType::Map), id)) => {
            let existing: Vec<(String, Option<ScalarValue>)> = tx
                .map_range(&id, ..)
                .map(|item| {
                    let scalar = match Value::from(item.value) {
                        Value::Scalar(s) => Some(s.into_owned()),
                        Value::Object(_) => None,
                    };
                    (item.key.to_string(), scalar)
                })
                .collect();
            (id, existing)
        }
        _ => {
            // A new record is created in one batch: automerge 0.12 pays per splice, and a batch is two
            // splices instead of one per field (what makes a 10,000-row import fit in seconds).
            let map: HashMap<&str, hydrate::Value> =
                wanted.iter().map(|(name, scalar)| (name.as_str(), hydrate::Value::scalar(scalar.clone()))).collect();
            tx.batch_create_object(&coll, key, &hydrate::Value::from(map), false)?;
            return Ok(true);
        }
    };
    let mut changed = false;
    for (name, scalar) in &wanted {
        let same = existing.iter().any(|(k, v)| k == name && v.as_ref() == Some(scalar));
        if !same {
            tx.put(&obj, name.as_str(), scalar.clone())?;
            changed = true;
        }
    }
    for (name, _) in &existing {
        if !wanted.iter().any(|(k, _)| k == name) {
            tx.delete(&obj, name.as_str())?;
            changed = true;
        }
    }
    Ok(changed)
}

fn record_json<D: ReadDoc>(doc: &D, obj: &ObjId, collection: &str, key: &str) -> Result<Json, DocError> {
    let mut map = Map::new();
    for item in doc.map_range(obj, ..) {
        let name = item.key.to_string();
        let Value::Scalar(scalar) = Value::from(item.value) else {
            continue;
        };
        let Some(value) = from_scalar(&scalar) else {
            continue;
        };
        if let Some(field) = name.strip_suffix(JSON_SUFFIX) {
            let text = value.as_str().unwrap_or_default();
            let nested: Json = serde_json::from_str(text).map_err(|e| DocError::BadNestedJson {
                collection: collection.into(),
                key: key.into(),
                field: field.into(),
                error: e.to_string(),
            })?;
            map.insert(field.to_string(), nested);
        } else {
            map.insert(name, value);
        }
    }
    Ok(Json::Object(map))
}

/// Reads one record as JSON, or `None` when absent.
pub fn get_record_json<D: ReadDoc>(doc: &D, collection: &str, key: &str) -> Result<Option<Json>, DocError> {
    let Some((Value::Object(ObjType::Map), coll)) = doc.get(ROOT, collection)? else {
        return Ok(None);
    };
    let Some((Value::Object(ObjType::Map), obj)) = doc.get(&coll, key)? else {
        return Ok(None);
    };
    record_json(doc, &obj, collection, key).map(Some)
}

/// Reads one record as a typed value.
pub fn get_record<D: ReadDoc, R: DeserializeOwned>(
    doc: &D,
    collection: &str,
    key: &str,
) -> Result<Option<R>, DocError> {
    match get_record_json(doc, collection, key)? {
        None => Ok(None),
        Some(json) => serde_json::from_value(json).map(Some).map_err(|e| DocError::Schema {
            collection: collection.into(),
            key: key.into(),
            error: e.to_string(),
        }),
    }
}

/// Every record of one collection, in key order, as JSON.
pub fn collection_json<D: ReadDoc>(doc: &D, collection: &str) -> Result<Vec<(String, Json)>, DocError> {
    let Some((Value::Object(ObjType::Map), coll)) = doc.get(ROOT, collection)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for item in doc.map_range(&coll, ..) {
        let obj = item.id();
        let key = item.key.to_string();
        if let Value::Object(ObjType::Map) = Value::from(item.value) {
            out.push((key.clone(), record_json(doc, &obj, collection, &key)?));
        }
    }
    Ok(out)
}

/// Every record of a document, per collection: the input of projections.
pub fn all_records<D: ReadDoc>(doc: &D) -> Result<Vec<(String, String, Json)>, DocError> {
    let collections: Vec<String> = doc
        .map_range(ROOT, ..)
        .filter(|item| matches!(item.value, automerge::ValueRef::Object(ObjType::Map)))
        .map(|item| item.key.to_string())
        .collect();
    let mut out = Vec::new();
    for collection in collections {
        for (key, json) in collection_json(doc, &collection)? {
            out.push((collection.clone(), key, json));
        }
    }
    Ok(out)
}

/// The subject of a record (what `audit log --asset` and per-asset queries filter on).
pub fn record_subject(key: &str, json: &Json) -> String {
    for field in ["asset", "name", "change"] {
        if let Some(s) = json.get(field).and_then(Json::as_str) {
            return s.to_string();
        }
    }
    key.to_string()
}

#[cfg(test)]
mod tests {
    use automerge::transaction::CommitOptions;
    use automerge::{ActorId, Automerge};
    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Rec {
        name: String,
        n: i64,
        flag: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        opt: Option<String>,
        tags: Vec<String>,
    }

    fn doc() -> Automerge {
        Automerge::new().with_actor(ActorId::from(&[1u8; 16][..]))
    }

    fn commit(doc: &mut Automerge, rec: &Rec) -> bool {
        let mut tx = doc.transaction();
        let changed = put_record(&mut tx, "things", "k1", rec).expect("put");
        tx.commit_with(CommitOptions::default().with_message("m"));
        changed
    }

    #[test]
    fn records_round_trip_and_only_changes_are_written() {
        let mut doc = doc();
        let rec = Rec { name: "a".into(), n: 3, flag: true, opt: Some("x".into()), tags: vec!["t".into()] };
        assert!(commit(&mut doc, &rec));
        assert_eq!(get_record::<_, Rec>(&doc, "things", "k1").expect("get"), Some(rec.clone()));
        let before = doc.get_heads();
        assert!(!commit(&mut doc, &rec), "rewriting identical values must not write");
        let mut edited = rec.clone();
        edited.opt = None;
        edited.n = 4;
        assert!(commit(&mut doc, &edited));
        assert_ne!(doc.get_heads(), before);
        assert_eq!(get_record::<_, Rec>(&doc, "things", "k1").expect("get"), Some(edited));
        let saved = doc.save();
        let loaded = Automerge::load(&saved).expect("load");
        assert_eq!(all_records(&loaded).expect("records").len(), 1);
    }

    #[test]
    fn bad_nested_json_is_an_error_not_a_panic() {
        let mut doc = doc();
        let mut tx = doc.transaction();
        let coll = tx.put_object(ROOT, "things", ObjType::Map).expect("obj");
        let obj = tx.put_object(&coll, "k", ObjType::Map).expect("obj");
        tx.put(&obj, "tags~json", "[not json").expect("put");
        tx.commit();
        let err = get_record_json(&doc, "things", "k").unwrap_err();
        assert!(err.to_string().starts_with("things/k: field tags holds invalid JSON"), "{err}");
    }

    proptest! {
        #[test]
        fn any_record_round_trips(name in ".{0,40}", n in any::<i64>(), flag in any::<bool>(), opt in proptest::option::of(".{0,10}"), tags in proptest::collection::vec(".{0,8}", 0..4)) {
            let mut doc = doc();
            let rec = Rec { name, n, flag, opt, tags };
            commit(&mut doc, &rec);
            let loaded = Automerge::load(&doc.save()).expect("load");
            prop_assert_eq!(get_record::<_, Rec>(&loaded, "things", "k1").expect("get"), Some(rec));
        }
    }
}
