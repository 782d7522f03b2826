//! Lists of named items are compared by their key, not by their position: pfSense/OPNsense items named by a
//! `<name>` or `<tracker>` child, L5X modules, PLCopen POUs and SimaticML members named by their `Name`/`name` attribute. Inserting an item first is one
//! addition, removing one is one removal at its name, and a firewall rule that moved is reported as moved.
//! The inputs are the kit's real files (`../shared/fixtures`), edited the way an engineer would.

use std::path::{Path, PathBuf};

use datum_shared::diff::{diff, render, ChangeKind, DiffReport};
use datum_shared::normalize::{normalize, FingerprintKey, Normalized};

fn kit(relative: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    assert!(dir.is_dir(), "the kit is missing: expected fixtures at {}", dir.display());
    dir.join(relative)
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(kit(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn norm(name: &str, text: &str) -> Normalized {
    normalize(Some(name), text.as_bytes(), &FingerprintKey([5; 32])).expect("normalize")
}

/// Diffs two texts of one file and checks the changes as `(kind, location, n_removed, n_added)`.
fn check(name: &str, old: &str, new: &str, expect: &[(ChangeKind, &str, usize, usize)]) -> DiffReport {
    let report = diff(&norm(name, old), &norm(name, new), false);
    let got: Vec<(ChangeKind, &str, usize, usize)> =
        report.changes.iter().map(|c| (c.kind, c.location.as_str(), c.removed.len(), c.added.len())).collect();
    assert_eq!(got, expect, "\n{}", render(&report));
    report
}

/// `text` with `insert` placed right after the first occurrence of `after`.
fn inserted_after(text: &str, after: &str, insert: &str) -> String {
    let at = text.find(after).unwrap_or_else(|| panic!("{after:?} not in the fixture")) + after.len();
    format!("{}{insert}{}", &text[..at], &text[at..])
}

/// `text` without the element that starts at the first occurrence of `start` and ends with `end`.
fn element_removed(text: &str, start: &str, end: &str) -> (String, String) {
    let from = text.find(start).unwrap_or_else(|| panic!("{start:?} not in the fixture"));
    let to = from + text[from..].find(end).expect("element end") + end.len();
    (format!("{}{}", &text[..from], &text[to..]), text[from..to].to_string())
}

const NEW_GATEWAY: &str = "
    <gateway_item>
      <descr>Backup uplink</descr>
      <ipprotocol>inet</ipprotocol>
      <interface>opt1</interface>
      <gateway>10.9.9.1</gateway>
      <name>BACKUP_GW</name>
      <weight>1</weight>
    </gateway_item>";

#[test]
fn opnsense_gateways_are_named_by_their_name_child() {
    let lines = norm("opnsense.xml", &read("pfsense-opnsense/oxidized_opnsense_nano_23.7.xml"));
    let contexts: Vec<&str> = lines.lines.iter().map(|l| l.context.as_ref()).collect();
    assert!(contexts.contains(&"opnsense/gateways/gateway_item[LAN_GW]"), "{contexts:?}");
    assert!(contexts.contains(&"opnsense/gateways/gateway_item[WAN_GW]"));
    // The export holds WAN_GW twice: the second keeps a path of its own.
    assert!(contexts.contains(&"opnsense/gateways/gateway_item[WAN_GW]#2"));
    assert!(!contexts.iter().any(|c| c.contains("gateway_item#")), "no numbered gateway left");
}

#[test]
fn a_gateway_inserted_first_is_one_addition() {
    let name = "opnsense.xml";
    let old = read("pfsense-opnsense/oxidized_opnsense_nano_23.7.xml");
    let new = inserted_after(&old, "<gateways>", NEW_GATEWAY);
    let report = check(name, &old, &new, &[(ChangeKind::Added, "opnsense/gateways/gateway_item[BACKUP_GW]", 0, 13)]);
    let text = render(&report);
    assert!(text.starts_with("@@ opnsense/gateways/gateway_item[BACKUP_GW] (added)\n"), "{text}");
    assert!(text.contains("/gateway: 10.9.9.1\n"), "{text}");
}

#[test]
fn pfsense_firewall_rules_are_named_by_their_tracker() {
    let lines = norm("config.xml", &read("pfsense-opnsense/oxidized_pfsense_CE_2.7.2.xml"));
    let contexts: Vec<&str> = lines.lines.iter().map(|l| l.context.as_ref()).collect();
    assert!(contexts.contains(&"pfsense/filter/rule[tracker=0100000101]"), "{contexts:?}");
    assert!(contexts.contains(&"pfsense/filter/rule[tracker=0100000102]"));
}

const NEW_RULE: &str = "
		<rule>
			<type>block</type>
			<interface>wan</interface>
			<ipprotocol>inet</ipprotocol>
			<tracker>1700000000</tracker>
			<source>
				<any></any>
			</source>
			<destination>
				<network>lanip</network>
			</destination>
			<descr><![CDATA[Block WAN to LAN address]]></descr>
		</rule>";

#[test]
fn a_rule_inserted_first_is_one_addition() {
    let name = "config.xml";
    let old = read("pfsense-opnsense/oxidized_pfsense_CE_2.7.2.xml");
    let new = inserted_after(&old, "<filter>", NEW_RULE);
    let location = "pfsense/filter/rule[tracker=1700000000]";
    check(name, &old, &new, &[(ChangeKind::Added, location, 0, 16)]);
}

#[test]
fn a_removed_l5x_module_is_one_removal_at_its_name() {
    let name = "L5Sharp_Test_project.v1.L5X";
    let old = read("versions/L5Sharp_Test_project.v1.L5X");
    let (new, module) = element_removed(&old, "<Module Name=\"Local_Mod_7\"", "</Module>");
    assert!(module.len() > 200, "the module element is cut whole: {module}");
    let report = diff(&norm(name, &old), &norm(name, &new), false);
    assert_eq!(report.changes.len(), 1, "{}", render(&report));
    let change = &report.changes[0];
    assert_eq!(change.kind, ChangeKind::Removed);
    assert!(change.location.ends_with("/Modules/Module[Local_Mod_7]"), "{}", change.location);
    assert!(change.removed.iter().all(|l| l.starts_with(&change.location)), "{:?}", change.removed);
    let text = render(&report);
    assert!(text.starts_with(&format!("@@ {} (removed)\n", change.location)), "{text}");
}

#[test]
fn the_l5x_series_shows_local_mod_7_removed() {
    let name = "L5Sharp_Test_project.v1.L5X";
    let old = norm(name, &read("versions/L5Sharp_Test_project.v1.L5X"));
    let new = norm(name, &read("versions/L5Sharp_Test_project.v2.L5X"));
    let report = diff(&old, &new, false);
    let text = render(&report);
    assert!(
        report
            .changes
            .iter()
            .any(|c| c.kind == ChangeKind::Removed && c.location.ends_with("/Modules/Module[Local_Mod_7]")),
        "{text}"
    );
}

/// `text` with the element starting at `start` (and ending with `end`) moved to just before `before`.
fn element_moved_before(text: &str, start: &str, end: &str, before: &str) -> String {
    let (without, element) = element_removed(text, start, end);
    let at = without.find(before).unwrap_or_else(|| panic!("{before:?} not in the fixture"));
    format!("{}{element}\n{}", &without[..at], &without[at..])
}

#[test]
fn reordered_firewall_rules_are_a_move() {
    let name = "config.xml";
    let old = read("pfsense-opnsense/oxidized_pfsense_CE_2.7.2.xml");
    // The IPv6 rule (tracker 0100000102) now comes first: rule order is behaviour.
    let second = old.match_indices("<rule>").nth(1).expect("two rules").0;
    let moved_rule = &old[second..second + old[second..].find("</rule>").expect("rule end") + "</rule>".len()];
    let new = element_moved_before(&old, moved_rule, "</rule>", "<rule>");
    assert_ne!(old, new);
    // Which of the two rules the diff sees as moved is its choice; one move, at a rule, is the report.
    let report = diff(&norm(name, &old), &norm(name, &new), false);
    let text = render(&report);
    assert_eq!(report.changes.len(), 1, "{text}");
    let change = &report.changes[0];
    assert_eq!(change.kind, ChangeKind::Moved, "{text}");
    let rules = ["pfsense/filter/rule[tracker=0100000101]", "pfsense/filter/rule[tracker=0100000102]"];
    assert!(rules.contains(&change.location.as_str()), "{text}");
    assert_eq!(change.removed, change.added);
    assert!(text.starts_with(&format!("@@ {} (moved)\n", change.location)), "{text}");
    assert!(text.contains(&format!("  {}/tracker: 01000001", change.location)), "{text}");
    assert!(!text.contains("\n- ") && !text.contains("\n+ "), "a moved rule is shown once, unchanged: {text}");
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["changes"][0]["kind"], "moved", "{json}");
}

#[test]
fn a_moved_and_edited_rule_is_a_removal_and_an_addition() {
    let name = "config.xml";
    let old = read("pfsense-opnsense/oxidized_pfsense_CE_2.7.2.xml");
    let second = old.match_indices("<rule>").nth(1).expect("two rules").0;
    let moved_rule = &old[second..second + old[second..].find("</rule>").expect("rule end") + "</rule>".len()];
    let new = element_moved_before(&old, moved_rule, "</rule>", "<rule>").replacen("inet6", "inet46", 1);
    let location = "pfsense/filter/rule[tracker=0100000102]";
    let report = diff(&norm(name, &old), &norm(name, &new), false);
    let kinds: Vec<(ChangeKind, &str)> = report.changes.iter().map(|c| (c.kind, c.location.as_str())).collect();
    assert!(
        kinds.contains(&(ChangeKind::Added, location)) && kinds.contains(&(ChangeKind::Removed, location)),
        "{kinds:?}"
    );
}

#[test]
fn reordered_gateways_and_aliases_are_no_change() {
    let name = "opnsense.xml";
    let old = read("pfsense-opnsense/oxidized_opnsense_nano_23.7.xml");
    // LAN_GW, the first gateway, goes last.
    let lan = old.find("<gateway_item>").expect("a gateway");
    let lan_item = &old[lan..lan + old[lan..].find("</gateway_item>").expect("end") + "</gateway_item>".len()];
    assert!(lan_item.contains("<name>LAN_GW</name>"), "{lan_item}");
    let new = element_moved_before(&old, lan_item, "</gateway_item>", "</gateways>");
    assert_ne!(old, new);
    let report = diff(&norm(name, &old), &norm(name, &new), false);
    assert!(!report.significant, "{}", render(&report));

    let name = "config.xml";
    let old = read("pfsense-opnsense/pfsensible_pfsense_gateway_config.xml");
    let aliases = old.find("<aliases>").expect("aliases");
    let first = aliases + old[aliases..].find("<alias>").expect("an alias");
    let alias = &old[first..first + old[first..].find("</alias>").expect("end") + "</alias>".len()];
    let new = element_moved_before(&old, alias, "</alias>", "</aliases>");
    assert_ne!(old, new);
    let lines = norm(name, &old);
    assert!(lines.lines.iter().any(|l| l.context.contains("/aliases/alias[")), "aliases are keyed");
    let report = diff(&lines, &norm(name, &new), false);
    assert!(!report.significant, "{}", render(&report));
}

const NEW_POU: &str = r#"
      <pou name="PUMP_GUARD" pouType="functionBlock">
        <interface>
          <inputVars>
            <variable name="Running"><type><BOOL/></type></variable>
          </inputVars>
        </interface>
        <body>
          <ST><xhtml:p xmlns:xhtml="http://www.w3.org/1999/xhtml"><![CDATA[Running := Running;]]></xhtml:p></ST>
        </body>
      </pou>"#;

/// PLCopen POUs are named by their `name` attribute: a POU inserted before all others is one addition at its
/// name, and nothing of the POUs after it is reported.
#[test]
fn a_plcopen_pou_inserted_first_is_one_addition() {
    let old = read("plcopen-codesys/beremiz_iec61131_lang_test_plc.xml");
    let new = inserted_after(&old, "<pous>", NEW_POU);
    let report = diff(&norm("plc.xml", &old), &norm("plc.xml", &new), false);
    assert!(!report.changes.is_empty(), "the new POU is seen");
    assert!(
        report.changes.iter().all(|c| c.kind == ChangeKind::Added && c.location.contains("PUMP_GUARD")),
        "only additions inside the new POU:\n{}",
        render(&report)
    );
    assert!(report.changes.iter().all(|c| c.removed.is_empty()), "{}", render(&report));
}

/// SimaticML members are named by their `Name` attribute: removing one is one removal at its name.
#[test]
fn a_removed_simaticml_member_is_one_removal_at_its_name() {
    let old = read("siemens-tia/tia_DB_Celda.xml");
    let (new, _) = element_removed(&old, r#"<Member Name="Modo auto""#, "</Member>");
    let report = diff(&norm("db.xml", &old), &norm("db.xml", &new), false);
    assert!(!report.changes.is_empty(), "the removal is seen");
    assert!(
        report.changes.iter().all(|c| c.kind == ChangeKind::Removed && c.location.contains("Modo auto")),
        "only the member's lines, at its name:\n{}",
        render(&report)
    );
}
