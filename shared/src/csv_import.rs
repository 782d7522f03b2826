//! Parsing an asset inventory from CSV, the format plants already keep their lists in.
//!
//! Header: `name,kind,vendor,model,serial,firmware,location,zone,ip,criticality,owner,in_scope` (any order;
//! only `name` and `kind` are required). A `tags` column is split on `;`. Every other column becomes a custom
//! field of the asset (column name lower-cased, value verbatim). The whole file is validated before anything is returned: one bad row
//! rejects the file, naming its line and field.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

use crate::ids::AssetName;
use crate::model::{AssetFields, AssetKind, Criticality};
use crate::text;

/// Columns with a meaning, in export order.
pub const COLUMNS: [&str; 12] = [
    "name",
    "kind",
    "vendor",
    "model",
    "serial",
    "firmware",
    "location",
    "zone",
    "ip",
    "criticality",
    "owner",
    "in_scope",
];

/// An asset's values of [`COLUMNS`], in that order (empty where it has none): what an export writes.
pub fn row_of(a: &crate::model::Asset) -> [String; 12] {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        a.name.to_string(),
        a.kind.to_string(),
        text(&a.vendor),
        text(&a.model),
        text(&a.serial),
        text(&a.firmware),
        text(&a.location),
        text(&a.zone),
        text(&a.ip),
        a.criticality.to_string(),
        text(&a.owner),
        a.in_scope.to_string(),
    ]
}

/// Largest CSV accepted, to keep memory bounded.
pub const MAX_CSV_BYTES: usize = 64 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("header: {0}")]
    Header(String),
    #[error("file is {size} bytes; the limit is {MAX_CSV_BYTES}")]
    TooLarge { size: usize },
    #[error("file is not text")]
    Binary,
}

/// One parsed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRow {
    pub line: u64,
    pub name: AssetName,
    pub fields: AssetFields,
}

fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "yes" | "y" | "1" | "in" | "in-scope" => Some(true),
        "false" | "no" | "n" | "0" | "out" | "out-of-scope" => Some(false),
        _ => None,
    }
}

/// Parses and validates a whole file. Accepts UTF-8 (with or without BOM), UTF-16 with BOM and Windows-1252
/// (what spreadsheet programs write), `,` or `;` as separator.
pub fn parse(bytes: &[u8]) -> Result<Vec<CsvRow>, CsvError> {
    if bytes.len() > MAX_CSV_BYTES {
        return Err(CsvError::TooLarge { size: bytes.len() });
    }
    let (_, text) = text::decode(bytes);
    let text = text.ok_or(CsvError::Binary)?;
    // Spreadsheets end lines with CRLF; the reader's line count (which names a bad row's line) follows LF.
    let text = if text.contains('\r') { Cow::Owned(text.replace("\r\n", "\n")) } else { text };
    let first_line = text.lines().next().unwrap_or_default();
    let delimiter = if first_line.matches(';').count() > first_line.matches(',').count() { b';' } else { b',' };
    let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).flexible(false).from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| CsvError::Header(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let position = |name: &str| headers.iter().position(|h| h == name);
    let mut seen = HashSet::new();
    for h in &headers {
        if h.is_empty() {
            return Err(CsvError::Header("a column has an empty name".into()));
        }
        if !seen.insert(h.clone()) {
            return Err(CsvError::Header(format!("column {h:?} appears twice")));
        }
    }
    let name_col = position("name").ok_or_else(|| CsvError::Header("missing required column \"name\"".into()))?;
    let kind_col = position("kind").ok_or_else(|| CsvError::Header("missing required column \"kind\"".into()))?;
    let tags_col = position("tags");
    let custom_cols: Vec<(usize, &String)> =
        headers.iter().enumerate().filter(|(_, h)| !COLUMNS.contains(&h.as_str()) && h.as_str() != "tags").collect();

    let mut rows = Vec::new();
    let mut names = HashSet::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            let message = match e.kind() {
                csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                    format!("row has {len} fields but the header has {expected_len}")
                }
                _ => e.to_string(),
            };
            CsvError::Row { line, message }
        })?;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let row_err = |message: String| CsvError::Row { line, message };
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let get = |col: Option<usize>| col.and_then(|c| record.get(c)).map(str::trim).unwrap_or("");
        let name = AssetName::new(get(Some(name_col))).map_err(|e| row_err(format!("name: {e}")))?;
        if !names.insert(name.clone()) {
            return Err(row_err(format!("name: asset {name} appears more than once in the file")));
        }
        let kind: AssetKind = get(Some(kind_col)).parse().map_err(|e| row_err(format!("kind: {e}")))?;
        let text = |col: &str| position(col).map(|c| get(Some(c)).to_string());
        let criticality = match get(position("criticality")) {
            "" => None,
            v => Some(v.parse::<Criticality>().map_err(|e| row_err(format!("criticality: {e}")))?),
        };
        let in_scope =
            match position("in_scope") {
                None => None,
                Some(c) => Some(parse_bool(get(Some(c))).ok_or_else(|| {
                    row_err(format!("in_scope: {:?} is not one of true/false/yes/no/1/0", get(Some(c))))
                })?),
            };
        let tags = tags_col.map(|c| {
            get(Some(c)).split(';').map(str::trim).filter(|t| !t.is_empty()).map(String::from).collect::<Vec<_>>()
        });
        // Empty cells are kept: on an existing asset they clear that custom field.
        let custom: BTreeMap<String, String> =
            custom_cols.iter().map(|(c, h)| ((*h).clone(), get(Some(*c)).to_string())).collect();
        let fields = AssetFields {
            kind: Some(kind),
            vendor: text("vendor"),
            model: text("model"),
            serial: text("serial"),
            firmware: text("firmware"),
            location: text("location"),
            zone: text("zone"),
            ip: text("ip"),
            criticality,
            owner: text("owner"),
            in_scope,
            tags,
            custom: if custom_cols.is_empty() { None } else { Some(custom) },
        };
        fields.validate().map_err(row_err)?;
        rows.push(CsvRow { line, name, fields });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_err(input: &str, expected: &str) {
        let err = parse(input.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }

    #[test]
    fn parses_the_documented_header_and_extras() {
        let rows = parse(
            b"name,kind,vendor,model,serial,firmware,location,zone,ip,criticality,owner,in_scope,tags,cabinet\n\
              PLC-01,plc,Siemens,S7-1500,S123,V2.9,Hall 1,cell-1,10.0.1.10,critical,j.doe,yes,line1;safety,CAB-3\n\
              SW-01,Switch,Cisco,,,,,,10.0.0.2/24,,,no,,\n",
        )
        .expect("valid");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[0].fields.criticality, Some(Criticality::Critical));
        assert_eq!(rows[0].fields.tags, Some(vec!["line1".into(), "safety".into()]));
        assert_eq!(rows[0].fields.custom.as_ref().and_then(|c| c.get("cabinet")).map(String::as_str), Some("CAB-3"));
        assert_eq!(rows[1].fields.kind, Some(AssetKind::Switch));
        assert_eq!(rows[1].fields.in_scope, Some(false));
    }

    #[test]
    fn crlf_files_name_the_right_line() {
        // What spreadsheets write: CRLF line ends, a quoted field spanning lines.
        let input = "name,kind,location\r\nPLC-01,plc,Hall 1\r\nPLC-02,plc,x\r\nPLC-03,toaster,y\r\n";
        let err = parse(input.as_bytes()).unwrap_err().to_string();
        assert!(err.starts_with("line 4: kind:"), "{err}");
        let multi_line_cell = "name,kind,location\r\nPLC-01,plc,x\r\nPLC-02,plc,\"Hall 1\r\nEast\"\r\n";
        let err = parse(multi_line_cell.as_bytes()).unwrap_err().to_string();
        assert_eq!(err, "line 3: location contains a control character");
        let rows = parse(b"name,kind\r\nA,plc\r\nB,plc\r\n").expect("valid");
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3]);
        check_err("name,kind\r\nA,plc\r\nB,plc,extra\r\n", "line 3: row has 3 fields but the header has 2");
    }

    #[test]
    fn semicolons_and_windows_1252_from_spreadsheets() {
        let rows = parse(b"name;kind;location\nHMI-1;hmi;Stra\xDFe 1\n").expect("valid");
        assert_eq!(rows[0].fields.location.as_deref(), Some("Straße 1"));
    }

    #[test]
    fn errors_name_line_and_field() {
        check_err("name,kind\nA,plc\nB,toaster\n", "line 3: kind: asset kind \"toaster\" is not one of: plc, dcs, scada-server, hmi, historian, engineering-workstation, switch, router, firewall, rtu, safety-controller, server, other");
        check_err("name,kind\nA,plc\nA,hmi\n", "line 3: name: asset A appears more than once in the file");
        check_err("name,kind,ip\nA,plc,10.0.0.300\n", "line 2: ip \"10.0.0.300\" is not an IPv4/IPv6 address");
        check_err(
            "name,kind,criticality\nA,plc,extreme\n",
            "line 2: criticality: criticality \"extreme\" is not one of: low, medium, high, critical",
        );
        check_err(
            "name,kind,in_scope\nA,plc,maybe\n",
            "line 2: in_scope: \"maybe\" is not one of true/false/yes/no/1/0",
        );
        check_err("name,vendor\nA,x\n", "header: missing required column \"kind\"");
        check_err("name,kind,kind\nA,plc,plc\n", "header: column \"kind\" appears twice");
        check_err("name,kind\nA b,plc\n", "line 2: name: asset name \"A b\" may only contain letters, digits, '.', '_' and '-' (and must start with a letter or digit)");
        check_err("name,kind\nA,plc\nB,plc,extra\n", "line 3: row has 3 fields but the header has 2");
    }
}
