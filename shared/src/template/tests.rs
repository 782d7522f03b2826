//! The template format's validation and the rule engine, on the kit's real exports: Cisco IOS, sshd_config,
//! sysctl, a Windows security template (`GptTmpl.inf`), a pfSense XML backup; and a property test that a
//! `require` and the same `forbid` never both pass.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proptest::prelude::*;

use super::*;
use crate::normalize::{normalize, FingerprintKey, ALL_FORMATS};

fn kit(rel: &str) -> (String, Vec<u8>) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures").join(rel);
    let name = path.file_name().expect("name").to_string_lossy().into_owned();
    (name, std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn asset(kind: &str, criticality: &str) -> Asset {
    let now: DateTime<Utc> = DateTime::from_timestamp(1_764_547_200, 0).expect("a time");
    Asset {
        name: "A-1".parse().expect("name"),
        kind: kind.parse().expect("kind"),
        vendor: Some("Cisco".into()),
        model: None,
        serial: None,
        firmware: Some("16.8.1".into()),
        location: None,
        zone: Some("cell-1".into()),
        ip: None,
        criticality: criticality.parse().expect("criticality"),
        owner: None,
        in_scope: true,
        tags: vec![],
        custom: BTreeMap::new(),
        created_at: now,
        created_by: "t".into(),
        updated_at: now,
        updated_by: "t".into(),
        retired_at: None,
        retired_reason: None,
    }
}

/// `RULE: result — findings`, one line per rule, for a template over one real export.
fn run(template: &str, fixture: &str, set: &[(&str, &str)]) -> String {
    let t = Template::parse(template).unwrap_or_else(|e| panic!("{e}"));
    let (name, bytes) = kit(fixture);
    let lines = normalize(Some(&name), &bytes, &FingerprintKey([3; 32])).expect("normalise").lines;
    let set: BTreeMap<String, String> = set.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let params = t.values(&set).expect("parameters");
    let a = asset("router", "high");
    let mut out = String::new();
    for rule in &t.rules {
        let o = evaluate(rule, &a, Some(&lines), &params);
        let text = match &o {
            Outcome::Compliant => "compliant".to_string(),
            Outcome::NonCompliant { findings } => format!(
                "non-compliant — {}",
                findings
                    .iter()
                    .take(3)
                    .map(|f| format!("[{}] {}", f.location, f.line.as_deref().unwrap_or(&f.what)))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Outcome::NotApplicable { why } => format!("not-applicable — {why}"),
            Outcome::Error { why } => format!("error — {why}"),
            Outcome::Manual { question } => format!("manual — {question}"),
            Outcome::Waived { waiver, .. } => format!("waived — {waiver}"),
        };
        out.push_str(&format!("{}: {text}\n", rule.id));
    }
    out
}

const IOS: &str = r#"
[template]
id = "ios-hardening"
version = "1.0.0"
title = "Cisco IOS hardening"
enforcement = "report"
references = ["IEC 62443-3-3 SR 7.6", "CIS Cisco IOS 17 L1"]

[applies]
kind = ["switch", "router", "firewall"]
format = ["cisco-ios"]
criticality = ["high", "critical"]

[parameters]
syslog_host = { default = "10.0.0.5" }

[[rule]]
id = "IOS-01"
title = "Passwords stored encrypted"
require = "^service password-encryption$"
pass = ["service password-encryption\n"]
fail = ["no service password-encryption\n"]

[[rule]]
id = "IOS-02"
forbid = "^ip http server$"
pass = ["no ip http server\n"]
fail = ["ip http server\n"]

[[rule]]
id = "IOS-03"
require = "^logging host {syslog_host}$"
pass = ["logging host 10.0.0.5\n"]
fail = ["logging host 10.0.0.6\n"]

[[rule]]
id = "IOS-04"
within = "^line vty"
require = "transport input ssh$"
pass = ["line vty 0 4\n transport input ssh\n"]
fail = ["line vty 0 4\n transport input telnet ssh\n", "line vty 0 4\n login\nline vty 5 15\n transport input ssh\n"]

[[rule]]
id = "INV-01"
field = "owner"
required = true

[[rule]]
id = "INV-02"
field = "firmware"
at_least_version = "17.3"

[[rule]]
id = "MAN-01"
manual = "Is the console port physically locked?"
"#;

#[test]
fn ios_rules_on_real_cisco_exports() {
    let t = Template::parse(IOS).expect("valid");
    assert_eq!((t.id.as_str(), t.version, t.enforcement), ("ios-hardening", Version(1, 0, 0), Enforcement::Report));
    assert_eq!(t.check_snippets(&FingerprintKey([1; 32])), Vec::<String>::new());
    expect_test::expect![[r#"
        IOS-01: compliant
        IOS-02: compliant
        IOS-03: compliant
        IOS-04: compliant
        INV-01: non-compliant — [owner] owner is not recorded
        INV-02: non-compliant — [firmware] 16.8.1
        MAN-01: manual — Is the console port physically locked?
    "#]]
    .assert_eq(&run(IOS, "cisco-ios/oxidized_ios_asr920_16.8.1b.cfg", &[("syslog_host", "111.111.111.111")]));
    expect_test::expect![[r#"
        IOS-01: non-compliant — [] no line matches `^service password-encryption$`
        IOS-02: compliant
        IOS-03: non-compliant — [] no line matches `^logging host 10\.0\.0\.5$`
        IOS-04: non-compliant — [line vty 0 4] no line matches `transport input ssh$` in this block
        INV-01: non-compliant — [owner] owner is not recorded
        INV-02: non-compliant — [firmware] 16.8.1
        MAN-01: manual — Is the console port physically locked?
    "#]]
    .assert_eq(&run(IOS, "cisco-ios/pybatfish_london.cfg", &[]));
}

const SSH_SYSCTL: &str = r#"
[template]
id = "linux-hardening"
version = "2.1.0"
title = "Linux host hardening"

[[rule]]
id = "SSH-01"
key = "PermitRootLogin"
equals = "no"
pass = ["PermitRootLogin no\n"]
fail = ["PermitRootLogin yes\n", "Port 22\n"]

[[rule]]
id = "SSH-02"
key = "PasswordAuthentication"
one_of = ["no"]

[[rule]]
id = "SYS-01"
key = "kernel.dmesg_restrict"
equals = "1"

[[rule]]
id = "SYS-02"
key = "net.ipv4.ip_forward"
at_most = 0
"#;

#[test]
fn key_rules_on_real_sshd_and_sysctl_files() {
    expect_test::expect![[r#"
        SSH-01: non-compliant — [global] permitrootlogin yes
        SSH-02: non-compliant — [global] passwordauthentication yes
        SYS-01: non-compliant — [] kernel.dmesg_restrict is not set
        SYS-02: non-compliant — [] net.ipv4.ip_forward is not set
    "#]]
    .assert_eq(&run(SSH_SYSCTL, "linux-hardening/azure-app-service_python_sshd_config", &[]));
    expect_test::expect![[r#"
        SSH-01: non-compliant — [] PermitRootLogin is not set
        SSH-02: non-compliant — [] PasswordAuthentication is not set
        SYS-01: compliant
        SYS-02: compliant
    "#]]
    .assert_eq(&run(SSH_SYSCTL, "linux-hardening/konstruktoid_sysctl.conf", &[]));
}

const WINDOWS: &str = r#"
[template]
id = "win-accounts"
version = "1.0.0"
title = "Windows account policy"
[applies]
format = ["windows-inf"]

[[rule]]
id = "WIN-01"
key = "MinimumPasswordLength"
at_least = 14
pass = ["[System Access]\nMinimumPasswordLength = 14\n"]
fail = ["[System Access]\nMinimumPasswordLength = 8\n"]

[[rule]]
id = "WIN-02"
key = "EnableGuestAccount"
equals = "0"

[[rule]]
id = "WIN-03"
within = "^\\[Registry Values\\]$"
key = 'MACHINE\Software\Microsoft\Windows\CurrentVersion\Policies\System\ConsentPromptBehaviorAdmin'
at_least = 2
"#;

#[test]
fn key_rules_on_a_real_windows_security_template() {
    expect_test::expect![[r#"
        WIN-01: compliant
        WIN-02: compliant
        WIN-03: compliant
    "#]]
    .assert_eq(&run(WINDOWS, "windows-hardening/WSHB_Win10_Computer_GptTmpl.inf", &[]));
}

const PFSENSE: &str = r#"
[template]
id = "pfsense-admin"
version = "1.0.0"
title = "pfSense administration"
[applies]
format = ["pfsense"]

[[rule]]
id = "PF-01"
key = "pfsense/system/webgui/protocol"
equals = "https"

[[rule]]
id = "PF-02"
path = "^pfsense/system"
key = "pfsense/system/ssh/enable"
equals = "disabled"
"#;

#[test]
fn path_rules_on_a_real_pfsense_backup() {
    expect_test::expect![[r#"
        PF-01: compliant
        PF-02: non-compliant — [pfsense/system/ssh/enable] pfsense/system/ssh/enable: enabled
    "#]]
    .assert_eq(&run(PFSENSE, "pfsense-opnsense/oxidized_pfsense_CE_2.7.2.xml", &[]));
}

#[test]
fn every_problem_of_a_template_is_named_at_once() {
    let bad = r#"
[template]
id = "bad id"
version = "1.0"
title = ""
enforcement = "block"
[applies]
kind = ["toaster"]
format = ["cisco"]
[[rule]]
id = "R1"
require = "^a("
[[rule]]
id = "R1"
forbid = "x"
key = "y"
[[rule]]
id = "R3"
require = "^logging host {syslog}$"
[[rule]]
id = "R4"
key = "Port"
[[rule]]
id = "R5"
field = "colour"
required = true
"#;
    let problems = Template::parse(bad).expect_err("invalid").0;
    let text = problems.join("\n");
    for expected in [
        "template id \"bad id\"",
        "version \"1.0\" is not MAJOR.MINOR.PATCH",
        "no title",
        "enforcement \"block\"",
        "applies.kind",
        "applies.format \"cisco\"",
        "rule \"R1\": pattern \"^a(\"",
        "rule \"R1\": the id is used twice",
        "rule \"R1\": exactly one of require, forbid, key, field, manual",
        "rule \"R3\": {syslog} is not a declared parameter",
        "rule \"R4\": a key rule needs exactly one of",
        "rule \"R5\": field \"colour\"",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    // Unknown keys and bad TOML are named too; a huge file is refused before parsing.
    assert!(Template::parse("[template]\nid='a'\nversion='1.0.0'\ntitle='t'\ncolour='x'\n").is_err());
    assert!(Template::parse(&"#".repeat(MAX_TEMPLATE_BYTES + 1)).is_err());
    // A snippet that does not give its stated result makes the template unpublishable.
    let wrong = IOS.replace("fail = [\"ip http server\\n\"]", "fail = [\"no ip http server\\n\"]");
    let t = Template::parse(&wrong).expect("valid syntax");
    assert_eq!(t.check_snippets(&FingerprintKey([1; 32])), vec!["rule IOS-02: its fail example #1 is compliant"]);
}

#[test]
fn parameters_are_substituted_escaped_and_must_have_a_value() {
    let t = Template::parse(IOS).expect("valid");
    let rule = t.rules.iter().find(|r| r.id == "IOS-03").expect("rule");
    let lines = crate::normalize::normalize_as(Format::CiscoIos, "logging host 10x0x0x5\n", &FingerprintKey([1; 32]));
    let params = t.values(&BTreeMap::new()).expect("defaults");
    // The dots of 10.0.0.5 are literal, not "any character".
    assert!(matches!(evaluate(rule, &asset("router", "high"), Some(&lines), &params), Outcome::NonCompliant { .. }));
    assert!(t.values(&[("nope".to_string(), "1".to_string())].into()).is_err(), "an unknown parameter");
    // A rule within blocks a configuration does not have does not apply to it.
    let vty = t.rules.iter().find(|r| r.id == "IOS-04").expect("rule");
    let no_vty = crate::normalize::normalize_as(
        Format::CiscoIos,
        "hostname x
!
",
        &FingerprintKey([1; 32]),
    );
    assert!(matches!(evaluate(vty, &asset("router", "high"), Some(&no_vty), &params), Outcome::NotApplicable { .. }));
    assert!(matches!(evaluate(vty, &asset("router", "high"), None, &params), Outcome::NotApplicable { .. }));
    let no_default = IOS.replace("syslog_host = { default = \"10.0.0.5\" }", "syslog_host = {}");
    let t = Template::parse(&no_default).expect("valid");
    assert!(t.values(&BTreeMap::new()).unwrap_err().contains("syslog_host"));
}

#[test]
fn applicability_follows_kind_format_and_criticality() {
    let t = Template::parse(IOS).expect("valid");
    assert!(t.applies_to(&asset("router", "high"), Some(Format::CiscoIos)));
    assert!(!t.applies_to(&asset("router", "low"), Some(Format::CiscoIos)));
    assert!(!t.applies_to(&asset("plc", "high"), None));
    assert!(!t.applies_to(&asset("switch", "critical"), Some(Format::JunosCurly)));
}

#[test]
fn versions_compare_by_number() {
    assert_eq!("1.10.0".parse::<Version>().expect("v").cmp(&"1.9.3".parse().expect("v")), std::cmp::Ordering::Greater);
    assert!("01.0.0".parse::<Version>().is_err() && "1.0".parse::<Version>().is_err());
    assert_eq!(version_cmp("35.011", "35.9"), Some(std::cmp::Ordering::Greater));
    assert_eq!(version_cmp("V4.2", "4.2.0"), Some(std::cmp::Ordering::Equal));
    assert_eq!(version_cmp("abc", "1"), None);
}

proptest! {
    /// Whatever the lines and the pattern, a `require` and the same `forbid` never both pass.
    #[test]
    fn require_and_forbid_of_one_pattern_never_both_pass(
        lines in proptest::collection::vec("[a-z ]{0,12}", 0..8),
        pattern in "\\^?[a-z]{1,3}\\$?",
    ) {
        let text = lines.join("\n");
        let norm = crate::normalize::normalize_as(Format::Text, &text, &FingerprintKey([1; 32]));
        let params = BTreeMap::new();
        let rule = |check| Rule { id: "R".into(), title: "R".into(), check, pass: vec![], fail: vec![] };
        let require = rule(Check::Require { pattern: pattern.clone(), within: None });
        let forbid = rule(Check::Forbid { pattern, within: None });
        let both = evaluate_lines(&require, &norm, &params) == Outcome::Compliant
            && evaluate_lines(&forbid, &norm, &params) == Outcome::Compliant;
        prop_assert!(!both);
    }
}

#[test]
fn every_format_is_listed_once_for_templates() {
    let names: std::collections::BTreeSet<&str> = ALL_FORMATS.iter().map(|f| f.as_str()).collect();
    assert_eq!(names.len(), ALL_FORMATS.len());
    for f in ALL_FORMATS {
        // The list is what `applies.format` accepts: each name reads back as its format.
        let t = format!(
            "[template]\nid='x'\nversion='1.0.0'\ntitle='t'\n[applies]\nformat=['{}']\n[[rule]]\nid='M'\nmanual='q'\n",
            f.as_str()
        );
        assert_eq!(Template::parse(&t).expect("valid").applies.format, vec![f]);
    }
}

const JUNOS: &str = r#"
[template]
id = "junos-services"
version = "1.0.0"
title = "Junos management services"
[applies]
format = ["junos"]
[[rule]]
id = "JUN-01"
within = "^system > services$"
forbid = "^telnet;$"
pass = ["system {\n services {\n  ssh;\n }\n}\n"]
fail = ["system {\n services {\n  telnet;\n }\n}\n"]
[[rule]]
id = "JUN-02"
within = "^system > services$"
require = "^ssh"
"#;

const FORTIOS: &str = r#"
[template]
id = "fortios-admin"
version = "1.0.0"
title = "FortiOS administrative access"
[applies]
format = ["fortios"]
[[rule]]
id = "FGT-01"
within = "^config system interface"
forbid = "^set allowaccess .*\\b(http|telnet)\\b"
[[rule]]
id = "FGT-02"
within = "^config system global$"
require = "^set admin-restrict-local enable$"
"#;

const NXOS: &str = r#"
[template]
id = "nxos-telnet"
version = "1.0.0"
title = "NX-OS: no telnet"
[applies]
format = ["cisco-nxos"]
[[rule]]
id = "NX-01"
forbid = "^feature telnet$"
"#;

const L5X: &str = r#"
[template]
id = "logix-project"
version = "1.0.0"
title = "Logix project exports"
[applies]
format = ["rockwell-l5x"]
[[rule]]
id = "L5X-01"
path = "^RSLogix5000Content$"
key = "@SoftwareRevision"
at_least = 32
[[rule]]
id = "L5X-02"
path = "AddOnInstructionDefinition\\["
key = "@Revision"
matches = "^[0-9]+\\.[0-9]+$"
[[rule]]
id = "L5X-03"
path = "AddOnInstructionDefinition\\["
key = "@EditedBy"
equals = "ENE\\plant-engineering"
"#;

#[test]
fn rules_on_real_junos_fortios_nxos_and_l5x_exports() {
    assert_eq!(Template::parse(JUNOS).expect("valid").check_snippets(&FingerprintKey([1; 32])), Vec::<String>::new());
    expect_test::expect![[r#"
        JUN-01: compliant
        JUN-02: compliant
    "#]]
    .assert_eq(&run(JUNOS, "juniper/oxidized_junos_srx300_22.4.conf", &[]));
    expect_test::expect![[r#"
        FGT-01: non-compliant — [config system interface > edit "wan1"] set allowaccess ping https ssh snmp http fgfm ftm
        FGT-02: compliant
    "#]].assert_eq(&run(FORTIOS, "fortigate/oxidized_fortigate_FortiGate-91G_7.4.7.conf", &[]));
    expect_test::expect![[r#"
        NX-01: compliant
    "#]]
    .assert_eq(&run(NXOS, "cisco-ios/oxidized_nxos_N5548_7.3.13.cfg", &[]));
    expect_test::expect![[r#"
        L5X-01: compliant
        L5X-02: compliant
        L5X-03: non-compliant — [RSLogix5000Content/Controller[TestController]/AddOnInstructionDefinitions/AddOnInstructionDefinition[aoi_Test]] RSLogix5000Content/Controller[TestController]/AddOnInstructionDefinitions/AddOnInstructionDefinition[aoi_Test] @CreatedBy="ENE\\tnunnink" @CreatedDate="2021-10-22T15:27:48.120Z" @EditedBy="ENE\\tnunnink" @ExecuteEnableInFalse="false" @ExecutePostscan="false" @ExecutePrescan="false" @Name="aoi_Test" @Revision="1.2" @SoftwareRevision="v32.02"
    "#]].assert_eq(&run(L5X, "rockwell-l5x/L5Sharp_FBD.L5X", &[]));
}

#[test]
fn attributes_are_read_unescaped_from_element_lines() {
    let line = r#"Root/Item[a] @EditedBy="ENE\\tnunnink" @Note="say \"hi\"" @Empty="""#;
    assert_eq!(attribute(line, "@EditedBy").as_deref(), Some(r"ENE\tnunnink"));
    assert_eq!(attribute(line, "@Note").as_deref(), Some(r#"say "hi""#));
    assert_eq!(attribute(line, "@Empty").as_deref(), Some(""));
    assert_eq!(attribute(line, "@Missing"), None);
    assert_eq!(attribute(r#"X @Cut="open"#, "@Cut"), None, "an unterminated value");
}

#[test]
fn the_example_templates_are_valid_and_their_examples_hold() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/templates");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/templates") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let t = Template::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(t.check_snippets(&FingerprintKey([1; 32])), Vec::<String>::new(), "{}", path.display());
        n += 1;
    }
    assert!(n >= 3, "{n} examples");
}

#[test]
fn a_policy_template_needs_no_rule_and_its_values_are_checked() {
    let t = Template::parse(
        "[template]\nid = \"corp-policy\"\nversion = \"1.0.0\"\ntitle = \"Intervals\"\n\n[policy]\n\
         capture_days = { critical = 3 }\napprovals = { high = 3 }\n",
    )
    .expect("a policy template");
    assert!(t.rules.is_empty());
    assert_eq!(t.policy.as_ref().and_then(|p| p.approvals.as_ref()).and_then(|a| a.high), Some(3));
    let err = Template::parse(
        "[template]\nid = \"p\"\nversion = \"1.0.0\"\ntitle = \"t\"\nacceptance = \"maybe\"\n\n[policy]\n\
         review_days = { low = 99999 }\n",
    )
    .expect_err("out of range");
    let text = err.to_string();
    assert!(text.contains("policy.review_days.low = 99999") && text.contains("acceptance \"maybe\""), "{text}");
    let err = Template::parse("[template]\nid = \"p\"\nversion = \"1.0.0\"\ntitle = \"t\"\n").expect_err("empty");
    assert!(err.to_string().contains("no [[rule]], no [policy] and no [change]"), "{err}");
}

#[test]
fn a_change_request_template_names_known_fields_only() {
    let head = "[template]\nid = \"corp-changes\"\nversion = \"1.0.0\"\ntitle = \"Change requests\"\n\n";
    let t = Template::parse(&format!(
        "{head}[change]\nrequired = [\"test_plan\"]\nchecklist = [\"Backup taken\", \"Vendor informed\"]\n"
    ))
    .expect("valid");
    assert_eq!(t.change.as_ref().map(|c| c.checklist.len()), Some(2));
    let err = Template::parse(&format!("{head}[change]\nrequired = [\"budget\"]\nchecklist = [\"\"]\n"))
        .expect_err("unknown field and empty item");
    let text = err.to_string();
    assert!(text.contains("change.required \"budget\"") && text.contains("change.checklist item"), "{text}");
}

#[test]
fn a_manual_rule_takes_the_newest_current_answer_of_a_review_of_that_asset() {
    use crate::model::{Answer, ManualAnswer, Review, ReviewOutcome};
    let at = |d: &str| DateTime::parse_from_rfc3339(d).expect("date").with_timezone(&Utc);
    let asset = AssetName::new("RTR-1").expect("name");
    let review = |id: u32, when: &str, answer: Answer, assets: Vec<AssetName>| Review {
        id,
        assets,
        zone: None,
        outcome: ReviewOutcome::Ok,
        notes: "n".into(),
        reviewed_at: at(when),
        reviewed_by: "rita".into(),
        drift: Vec::new(),
        answers: vec![ManualAnswer { template: "ios".into(), rule: "MAN-01".into(), answer }],
    };
    let reviews = vec![
        review(1, "2027-01-01T00:00:00Z", Answer::No, vec![asset.clone()]),
        review(2, "2027-02-01T00:00:00Z", Answer::Yes, vec![asset.clone()]),
        review(3, "2027-03-01T00:00:00Z", Answer::No, vec![AssetName::new("RTR-2").expect("name")]),
    ];
    let days = chrono::Duration::days;
    let now = at("2027-03-15T00:00:00Z");
    assert_eq!(answered(&reviews, "ios", "MAN-01", &asset, now, days(90)), Some(Outcome::Compliant));
    // Another template's rule of the same id, or no answer: undecided.
    assert_eq!(answered(&reviews, "other", "MAN-01", &asset, now, days(90)), None);
    // Review 2 is older than the interval: review 1 is older still, so the answer has lapsed.
    assert_eq!(answered(&reviews, "ios", "MAN-01", &asset, now, days(30)), None);
    // Before review 2, review 1's "no" stands.
    let then = at("2027-01-15T00:00:00Z");
    assert!(matches!(answered(&reviews, "ios", "MAN-01", &asset, then, days(90)), Some(Outcome::NonCompliant { .. })));
}
