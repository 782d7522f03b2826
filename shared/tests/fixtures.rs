//! The field fixtures in `../shared/fixtures`: every file is read, detected as its format and equal to itself;
//! version series show noise as noise and real changes where they happened. The kit must be present: these
//! tests fail, not skip, without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use datum_shared::diff::{diff, render, ChangeKind};
use datum_shared::normalize::{normalize, FingerprintKey, Format, Normalized};

fn kit() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(dir.is_dir(), "the kit is missing: expected fixtures at {}", dir.display());
    dir
}

fn key() -> FingerprintKey {
    FingerprintKey([42; 32])
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "SOURCES.md"))
        .collect();
    out.sort();
    out
}

fn norm(path: &Path) -> Normalized {
    let bytes = std::fs::read(path).expect("read fixture");
    let name = path.file_name().and_then(|n| n.to_str());
    normalize(name, &bytes, &key()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What each category may be detected as.
fn expected(category: &str) -> &'static [Format] {
    use Format::*;
    match category {
        "beckhoff-twincat" => &[TwinCat],
        "cisco-ios" => &[CiscoIos, CiscoNxos, CiscoIosXr, CiscoAsa],
        "fortigate" => &[FortiOs],
        "hmi-scada" => &[Json, Xml, Csv, Binary, Text],
        "iptables-nftables" => &[IptablesSave, Nftables, Firewalld, KeyValue, Text],
        "juniper" => &[JunosCurly, JunosSet],
        "linux-hardening" => &[AuditRules, KeyValue, SshdConfig, Sysctl, Text],
        "mikrotik" => &[MikroTik],
        "other-network" => &[NetworkCli, CiscoIos, KeyValue, OpenWrtUci, JunosSet, JunosCurly, Json, Text],
        "other-plc" => &[Xml, Step7Source, Text],
        "pfsense-opnsense" => &[PfSense, OpnSense],
        "plcopen-codesys" => &[PlcOpen, Xml],
        "rockwell-l5x" => &[RockwellL5x],
        "siemens-tia" => &[SimaticMl, Step7Source, Csv, Xml, Text],
        "windows-hardening" => &[WindowsInf, Csv, Xml, Binary],
        _ => &[],
    }
}

#[test]
fn every_fixture_is_read_detected_and_equal_to_itself() {
    let mut wrong = Vec::new();
    let mut n = 0;
    for category in std::fs::read_dir(kit()).expect("kit").flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        let name = category.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        for file in files(&category) {
            n += 1;
            let a = norm(&file);
            let b = norm(&file);
            let report = diff(&a, &b, true);
            assert!(!report.significant && report.changes.is_empty(), "{} differs from itself", file.display());
            assert!(!a.lines.is_empty(), "{} normalised to nothing", file.display());
            let allowed = expected(&name);
            if !allowed.is_empty() && !allowed.contains(&a.format) {
                wrong.push(format!(
                    "{name}/{}: {:?}",
                    file.file_name().and_then(|n| n.to_str()).unwrap_or(""),
                    a.format
                ));
            }
        }
    }
    assert!(n > 150, "only {n} fixtures found");
    assert!(wrong.is_empty(), "detected as an unexpected format:\n{}", wrong.join("\n"));
}

/// The version series: (file stem, from, to) -> expected significance, and a location the change must name.
fn check_pair(stem: &str, ext: &str, from: u32, to: u32, significant: bool, location: Option<&str>) {
    let dir = kit().join("versions");
    let a = norm(&dir.join(format!("{stem}.v{from}.{ext}")));
    let b = norm(&dir.join(format!("{stem}.v{to}.{ext}")));
    let report = diff(&a, &b, false);
    assert_eq!(report.significant, significant, "{stem} v{from}->v{to}:\n{}", render(&report));
    if let Some(location) = location {
        assert!(
            report.changes.iter().any(|c| c.location.contains(location)),
            "{stem} v{from}->v{to}: no change located at {location:?}:\n{}",
            render(&report)
        );
    }
}

#[test]
fn noise_only_pairs_are_not_significant() {
    check_pair("scrapli_iosxr_get_config", "txt", 1, 2, false, None);
    check_pair("konstruktoid_sysctl.conf", "conf", 1, 2, false, None);
    check_pair("TcUnit_FB_TcUnitRunner", "TcPOU", 1, 2, false, None);
    check_pair("scale_delong-sw02_juniper", "conf", 3, 4, true, Some("root-authentication"));
}

#[test]
fn real_changes_are_significant_and_located() {
    check_pair("LogixLibraries_Dev_CiscoIE4000_Module", "L5X", 1, 2, true, Some("Connection[Standard]"));
    check_pair("HomeAutomation_PLCopen_2022", "xml", 1, 2, true, Some("Method[InitRS485]"));
    check_pair("HomeAutomation_PLCopen_2025", "xml", 1, 2, true, None);
    check_pair("pybatfish_drift_as2dist1", "cfg", 1, 2, true, Some("router bgp"));
    check_pair("pybatfish_drift_as3border1", "cfg", 1, 2, true, None);
    check_pair("pybatfish_drift_as2core1", "cfg", 1, 2, true, Some("interface"));
    check_pair("pybatfish_filters_rtr-with-acl", "cfg", 1, 2, true, Some("access-list"));
    check_pair("scrapli_iosxr_get_config", "txt", 2, 3, true, Some("username"));
    check_pair("scale_delong-sw02_juniper", "conf", 2, 3, true, Some("interfaces"));
    check_pair("scale_br-mdf-01", "conf", 1, 2, true, None);
    check_pair("konstruktoid_audit-base.rules", "rules", 1, 2, true, None);
    check_pair("konstruktoid_sysctl.conf", "conf", 2, 3, true, None);
    check_pair("WSHB_Win10_Computer_GptTmpl", "inf", 3, 4, true, Some("[Registry Values]"));
    check_pair("GNS_MDF-RTR-1", "rsc", 1, 2, true, Some("/system"));
    check_pair("step7_acme-001", "awl", 1, 2, true, None);
    check_pair("pfsensible_pfsense_rule_config", "xml", 1, 2, true, Some("pfsense/gateways"));
    check_pair("FUXA_server_project.demo", "fuxap", 1, 2, true, Some("$."));
}

#[test]
fn every_version_series_loads_and_each_step_is_diffable() {
    let dir = kit().join("versions");
    let mut series: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for file in files(&dir) {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
        if let Some(idx) = name.rfind(".v") {
            series.entry(name[..idx].to_string()).or_default().push(file);
        }
    }
    assert!(series.len() >= 30, "{} series", series.len());
    for (stem, versions) in series {
        for pair in versions.windows(2) {
            let report = diff(&norm(&pair[0]), &norm(&pair[1]), false);
            for change in &report.changes {
                assert!(
                    !change.location.is_empty() || change.kind == ChangeKind::Added,
                    "{stem}: change without location"
                );
            }
        }
    }
}
