//! JSON (HMI projects, Ignition resources): one line per scalar, `path = value`, keys sorted (object key order
//! carries no meaning), array order kept.

use serde_json::Value;

use super::secrets::{self, FingerprintKey};
use super::NormLine;

pub fn normalize(text: &str, key: &FingerprintKey) -> Option<(Vec<NormLine>, usize)> {
    let value: Value = serde_json::from_str(text.trim_start_matches('\u{feff}')).ok()?;
    let mut out = Vec::new();
    let mut n = 0;
    walk(&value, "$", false, key, &mut out, &mut n);
    Some((out, n))
}

fn walk(value: &Value, path: &str, secret: bool, key: &FingerprintKey, out: &mut Vec<NormLine>, n: &mut usize) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            if keys.is_empty() {
                out.push(NormLine { text: format!("{path} = {{}}"), context: path.into() });
            }
            for k in keys {
                let child = format!("{path}.{k}");
                walk(&map[k], &child, secret || secrets::is_secret_name(k), key, out, n);
            }
        }
        Value::Array(items) => {
            if items.is_empty() {
                out.push(NormLine { text: format!("{path} = []"), context: path.into() });
            }
            for (i, item) in items.iter().enumerate() {
                walk(item, &format!("{path}[{i}]"), secret, key, out, n);
            }
        }
        scalar => {
            let shown = if secret && !matches!(scalar, Value::Null | Value::Bool(_)) && scalar.as_str() != Some("") {
                *n += 1;
                key.mask(&scalar.to_string(), false)
            } else if let Value::String(s) = scalar {
                let (masked, k) = secrets::mask_line(s, key);
                *n += k;
                format!("{masked:?}")
            } else {
                scalar.to_string()
            };
            let context = path.rsplit_once('.').map(|(p, _)| p).unwrap_or(path).into();
            out.push(NormLine { text: format!("{path} = {shown}"), context });
        }
    }
}
