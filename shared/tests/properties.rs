//! Property tests of normalisation and diffs: no panics on any input, a file never differs from itself,
//! normalising twice changes nothing, and no secret ever reaches the output.

use datum_shared::diff::{diff, render};
use datum_shared::normalize::{mask_raw, normalize, normalize_as, FingerprintKey, Format, NormLine};
use proptest::prelude::*;

fn key() -> FingerprintKey {
    FingerprintKey([9; 32])
}

fn cisco_line() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{3,8}".prop_map(|h| format!("hostname {h}")),
        (0u8..48).prop_map(|i| format!("interface GigabitEthernet0/{i}")),
        "[a-z ]{0,20}".prop_map(|d| format!(" description {d}")),
        (1u8..254, 1u8..254).prop_map(|(a, b)| format!(" ip address 10.{a}.{b}.1 255.255.255.0")),
        Just("!".to_string()),
        (1u16..199).prop_map(|n| format!("access-list {n} permit ip any any")),
    ]
}

fn sysctl_line() -> impl Strategy<Value = String> {
    ("[a-z]{2,6}", "[a-z_]{2,10}", 0u32..100, prop::bool::ANY).prop_map(|(a, b, v, spaced)| {
        if spaced {
            format!("net.{a}.{b} = {v}")
        } else {
            format!("net.{a}.{b}={v}")
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_bytes_normalise_without_panic_and_equal_themselves(bytes in prop::collection::vec(any::<u8>(), 0..2048), name in prop::option::of("[a-zA-Z0-9_.]{1,16}")) {
        let a = normalize(name.as_deref(), &bytes, &key()).expect("small input");
        let b = normalize(name.as_deref(), &bytes, &key()).expect("small input");
        let report = diff(&a, &b, true);
        prop_assert!(!report.significant);
        prop_assert!(report.changes.is_empty());
    }

    #[test]
    fn any_text_equals_itself(text in "(?s).{0,2000}") {
        let a = normalize(Some("x.cfg"), text.as_bytes(), &key()).expect("small input");
        let b = normalize(Some("x.cfg"), text.as_bytes(), &key()).expect("small input");
        prop_assert!(diff(&a, &b, true).changes.is_empty());
    }

    #[test]
    fn every_parser_survives_any_text(format_idx in 0usize..30, text in "(?s).{0,1500}") {
        let format = datum_shared::normalize::ALL_FORMATS[format_idx];
        let _ = datum_shared::normalize::normalize_as(format, &text, &key());
    }

    #[test]
    fn xml_like_input_never_panics(parts in prop::collection::vec(prop_oneof![Just("<a>"), Just("</a>"), Just("<b x=\"1\"/>"), Just("text"), Just("<![CDATA[x]]>"), Just("<?xml version=\"1.0\"?>"), Just("&amp;"), Just("<")], 0..40)) {
        let text = parts.concat();
        let _ = normalize(Some("x.xml"), text.as_bytes(), &key()).expect("small input");
    }

    #[test]
    fn normalising_is_idempotent_for_cisco(lines in prop::collection::vec(cisco_line(), 1..40)) {
        let text = format!("{}\nend\n", lines.join("\n"));
        let once = normalize(Some("r.cfg"), text.as_bytes(), &key()).expect("small");
        let again_text: String = once.lines.iter().map(|l| format!("{}\n", l.text)).collect();
        let twice = normalize(Some("r.cfg"), again_text.as_bytes(), &key()).expect("small");
        if once.format == twice.format {
            let a: Vec<&str> = once.lines.iter().map(|l| l.text.as_str()).collect();
            let b: Vec<&str> = twice.lines.iter().map(|l| l.text.as_str()).collect();
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn normalising_is_idempotent_for_sysctl(lines in prop::collection::vec(sysctl_line(), 1..40)) {
        let text = lines.join("\n");
        let once = normalize(Some("sysctl.conf"), text.as_bytes(), &key()).expect("small");
        let again_text: String = once.lines.iter().map(|l| format!("{}\n", l.text)).collect();
        let twice = normalize(Some("sysctl.conf"), again_text.as_bytes(), &key()).expect("small");
        prop_assert_eq!(once.hash(), twice.hash());
    }

    #[test]
    fn secrets_never_reach_the_output(secret in "[A-Za-z0-9]{10,24}", other in "[A-Za-z0-9]{10,24}", template in 0usize..13) {
        prop_assume!(secret != other);
        let render_with = |s: &str| -> (String, String) {
            let text = match template {
                0 => format!("hostname r1\n!\nenable secret 5 {s}\nusername admin privilege 15 secret 9 {s}\n!\nend\n"),
                1 => format!("hostname r1\n!\nsnmp-server community {s} RO\ninterface Gi0/1\n ip ospf authentication-key 7 {s}\n!\nend\n"),
                2 => format!("config system admin\n    edit \"admin\"\n        set password ENC {s}\n    next\nend\nconfig vpn ipsec phase1-interface\n    edit \"t\"\n        set psksecret {s}\n    next\nend\n"),
                3 => format!("system {{\n    root-authentication {{\n        encrypted-password \"{s}\"; ## SECRET-DATA\n    }}\n}}\n"),
                4 => format!("<?xml version=\"1.0\"?>\n<pfsense><system><user><name>admin</name><bcrypt-hash>{s}</bcrypt-hash><password>{s}</password></user></system></pfsense>\n"),
                5 => format!("/ip ipsec peer\nadd address=1.2.3.4 secret={s}\n/interface wireless security-profiles\nset wpa2-pre-shared-key={s}\n"),
                6 => format!("{{\"user\": \"a\", \"password\": \"{s}\", \"nested\": {{\"apiKey\": \"{s}\"}}}}"),
                7 => format!("wpa_passphrase={s}\nusers.1.password=$1${s}\n"),
                8 => format!("-----BEGIN RSA PRIVATE KEY-----\n{s}\n{s}\n-----END RSA PRIVATE KEY-----\n"),
                // Secret only because of the block they are in.
                9 => format!("#config-version=FGT60F-7.2.5:opmode=0\nconfig system snmp community\n    edit 1\n        set name \"{s}\"\n    next\nend\n"),
                10 => format!("# 2024-01-01 by RouterOS 7.15\n/snmp community\nset [ find default=yes ] name={s}\nadd addresses=10.0.0.0/8 name={s}\n"),
                // A RouterOS value wrapped onto the next line, whole or split in two.
                11 => format!("# 2024-01-01 by RouterOS 7.15\n/ip ipsec peer\nadd address=192.0.2.1/32 name=peer-b \\\n    secret={s}\n"),
                _ => {
                    let (head, tail) = s.split_at(s.len() / 2);
                    format!("# 2024-01-01 by RouterOS 7.15\n/ppp secret\nadd name=bob password={head}\\\n    {tail} service=pppoe\n")
                }
            };
            let n = normalize(Some("x"), text.as_bytes(), &key()).expect("small");
            let all_lines: String = n.lines.iter().map(|l| format!("{} {}\n", l.context, l.text)).collect();
            let raw = mask_raw(&text, &key()).join("\n");
            (format!("{all_lines}\n{raw}"), text)
        };
        let (old_out, _) = render_with(&other);
        let (new_out, _) = render_with(&secret);
        // A secret wrapped over two lines leaks if either half shows.
        let (head, tail) = secret.split_at(secret.len() / 2);
        prop_assert!(!new_out.contains(head) && !new_out.contains(tail), "secret leaked: {}", new_out);
        let (head, tail) = other.split_at(other.len() / 2);
        prop_assert!(!old_out.contains(head) && !old_out.contains(tail), "secret leaked: {}", old_out);
        let old_n = normalize(Some("x"), old_out.as_bytes(), &key()).expect("small");
        let new_n = normalize(Some("x"), new_out.as_bytes(), &key()).expect("small");
        let report = diff(&old_n, &new_n, false);
        let shown = format!("{}{}", render(&report), serde_json::to_string(&report).expect("json"));
        prop_assert!(!shown.contains(&secret) && !shown.contains(&other));
    }
}

/// Line templates per line-oriented format: `{w}` becomes a random word, `{n}` a number. Noise, comments,
/// secrets, wrapping and unbalanced blocks included: idempotence must hold for any sequence of them.
fn templates(format: Format) -> &'static [&'static str] {
    match format {
        Format::CiscoIos => &[
            "! Last configuration change at 10:{n}:00 UTC Mon Jan 1 2024",
            "hostname {w}",
            "!",
            "interface GigabitEthernet0/{n}",
            " description {w} {w}",
            " ip ospf authentication-key 7 {w}",
            "  ip address 10.0.{n}.1 255.255.255.0",
            "enable secret 5 $1${w}$x",
            "username {w} privilege 15 secret 9 $9${w}",
            "snmp-server community {w} RO",
            "x $1${w} <secret:0123abcd> {w}",
            "-----BEGIN RSA PRIVATE KEY-----",
            "{w}",
            "-----END RSA PRIVATE KEY-----",
        ],
        Format::JunosCurly => &[
            "## Last commit: 2024-01-0{n} 12:00:00 UTC by admin",
            "system {",
            "    host-name {w};",
            "    root-authentication {",
            "        encrypted-password \"$6${w}\"; ## SECRET-DATA",
            "    }",
            "}",
            "interfaces {",
            "    ge-0/0/{n} {",
            "        description \"{w} {w}\";",
            "        unit 0 { family inet { address 10.0.{n}.1/24; } }",
            "    inactive: ge-0/0/{n} {",
            "snmp { community {w} { authorization read-only; } }",
        ],
        Format::JunosSet => &[
            "## Last changed: 2024-01-0{n} 12:00:00 UTC",
            "set system host-name {w}",
            "set snmp community {w} authorization read-only",
            "set system login user {w} authentication encrypted-password \"$6${w}\"",
            "set interfaces ge-0/0/{n} unit 0 family inet address 10.0.{n}.1/24",
            "deactivate interfaces ge-0/0/{n}",
        ],
        Format::FortiOs => &[
            "#config-version=FGT60F-7.2.{n}-FW-build1517:opmode=0:vdom=0",
            "config system global",
            "    set hostname \"{w}\"",
            "end",
            "config system snmp community",
            "    edit {n}",
            "        set name \"{w}\"",
            "        config hosts",
            "            edit 1",
            "                set ip 10.0.0.{n} 255.255.255.255",
            "            next",
            "    next",
            "config user local",
            "    edit \"{w}\"",
            "        set passwd ENC {w}",
            "        set psksecret {w}",
        ],
        Format::MikroTik => &[
            "# 2024-01-0{n} 12:00:00 by RouterOS 7.15",
            "# software id = {w}",
            "/ip address",
            "add address=10.0.{n}.1/24 interface=ether{n}",
            "/snmp community",
            "set [ find default=yes ] name={w}",
            "add addresses=10.0.0.0/8 name=\"{w} {w}\"",
            "/ip ipsec peer",
            "add address=192.0.2.{n}/32 name=peer \\",
            "    secret={w}",
            "/system identity",
            "set name={w}",
            "# {w}",
        ],
        Format::IptablesSave => &[
            "# Generated by iptables-save v1.8.{n} on Mon Jan  1 10:00:00 2024",
            "*filter",
            ":INPUT DROP [{n}:{n}]",
            "-A INPUT -s 10.0.{n}.0/24 -j ACCEPT",
            "-A INPUT -p tcp --dport {n} -m comment --comment \"{w}\" -j ACCEPT",
            "COMMIT",
        ],
        Format::Nftables => &[
            "table inet {w} {",
            "    chain input {",
            "        tcp dport {n}   counter packets {n} bytes {n} accept",
            "    }",
            "}",
            "# {w}",
        ],
        Format::OpenWrtUci => &[
            "config interface '{w}'",
            "\toption proto 'static'",
            "\toption ipaddr '10.0.{n}.1'",
            "\tlist dns '10.0.0.{n}'",
            "config wifi-iface",
            "\toption key '{w}'",
            "# {w}",
        ],
        Format::SshdConfig => &[
            "PermitRootLogin no",
            "passwordauthentication  yes",
            "Match User {w}",
            "    X11Forwarding no",
            "Port {n}",
            "# {w}",
        ],
        Format::WindowsInf => &[
            "[Unicode]",
            "Unicode=yes",
            "[System Access]",
            "MinimumPasswordAge = {n}",
            "[Registry Values]",
            "MACHINE\\Software\\{w}=4,{n}",
            "; {w}",
        ],
        Format::KeyValue => &["{w}.{w}={n}", "users.{n}.password={w}", "{w} = {w} {w}", "# {w}"],
        Format::AuditRules => &["-w /etc/{w} -p wa -k {w}", "-a always,exit -F arch=b64 -S {w}  -k {w}", "# {w}"],
        Format::Step7Source => {
            &["FUNCTION_BLOCK FB {n}", "NETWORK", "TITLE = {w}", "      A     I {n}.0", "// {w}", "END_FUNCTION_BLOCK"]
        }
        _ => &["{w},{n},{w} {w}", "  {w}  ", "password={w}"],
    }
}

/// Formats whose contexts (not only their lines) survive normalising again: block structure is in the lines kept.
const CONTEXT_STABLE: &[Format] = &[
    Format::CiscoIos,
    Format::JunosCurly,
    Format::JunosSet,
    Format::FortiOs,
    Format::MikroTik,
    Format::IptablesSave,
    Format::OpenWrtUci,
    Format::WindowsInf,
    Format::KeyValue,
    Format::Nftables,
    Format::SshdConfig,
];

const LINE_FORMATS: &[Format] = &[
    Format::CiscoIos,
    Format::JunosCurly,
    Format::JunosSet,
    Format::FortiOs,
    Format::MikroTik,
    Format::IptablesSave,
    Format::Nftables,
    Format::OpenWrtUci,
    Format::SshdConfig,
    Format::WindowsInf,
    Format::KeyValue,
    Format::AuditRules,
    Format::Step7Source,
    Format::Text,
];

fn filled(format: Format) -> impl Strategy<Value = String> {
    let n = templates(format).len();
    prop::collection::vec((0..n, "[A-Za-z0-9]{3,10}", 0u16..300), 1..40).prop_map(move |picks| {
        let mut text = String::new();
        for (idx, word, number) in picks {
            text.push_str(&templates(format)[idx].replace("{w}", &word).replace("{n}", &number.to_string()));
            text.push('\n');
        }
        text
    })
}

/// A small XML document as a tree: (element, attributes, text, children).
#[derive(Debug, Clone)]
struct Element {
    name: &'static str,
    attributes: Vec<(&'static str, String)>,
    code: Vec<String>,
    children: Vec<Element>,
}

fn element() -> impl Strategy<Value = Element> {
    let leaf = (
        prop::sample::select(vec!["Program", "Routine", "Rung", "Tag", "Member", "rule"]),
        prop::collection::btree_map(
            prop::sample::select(vec!["Name", "DataType", "Radix", "ExportDate", "Password", "Use"]),
            "[A-Za-z0-9_]{1,8}",
            0..4,
        ),
        prop::collection::vec("[A-Za-z0-9_]{1,6} := [A-Za-z0-9_]{1,6};", 0..3),
    )
        .prop_map(|(name, attributes, code)| Element {
            name,
            attributes: attributes.into_iter().collect(),
            code,
            children: Vec::new(),
        });
    leaf.prop_recursive(3, 24, 4, |inner| {
        (inner.clone(), prop::collection::vec(inner, 0..4)).prop_map(|(mut parent, children)| {
            parent.children = children;
            parent
        })
    })
}

/// Writes the tree. `messy`: attributes in reverse order, a volatile export date, indentation and comments in the
/// code; otherwise the canonical form (sorted attributes, no volatile attribute, no comments, single spaces).
fn write_xml(e: &Element, messy: bool, depth: usize, out: &mut String) {
    let indent = if messy { " ".repeat(depth * 3) } else { String::new() };
    out.push_str(&format!("{indent}<{}", e.name));
    let mut attributes: Vec<&(&str, String)> =
        e.attributes.iter().filter(|(k, _)| messy || *k != "ExportDate").collect();
    if messy {
        attributes.reverse();
    }
    for (k, v) in attributes {
        let v = if messy && *k == "ExportDate" { format!("{v}-{depth}") } else { v.clone() };
        out.push_str(&format!(" {k}=\"{v}\""));
    }
    out.push('>');
    if !e.code.is_empty() {
        out.push_str("<![CDATA[");
        for line in &e.code {
            if messy {
                out.push_str(&format!("\n\t{}   (* note *)  ", line.replace(' ', "  ")));
            } else {
                out.push_str(&format!("\n{line}"));
            }
        }
        out.push_str("]]>");
    }
    for child in &e.children {
        out.push('\n');
        write_xml(child, messy, depth + 1, out);
    }
    out.push_str(&format!("</{}>", e.name));
}

fn document(root: &Element, messy: bool) -> String {
    let mut out =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<RSLogix5000Content SchemaRevision=\"1.0\">\n");
    write_xml(root, messy, 1, &mut out);
    out.push_str("\n</RSLogix5000Content>\n");
    out
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-1000i64..1000).prop_map(|n| Value::Number(n.into())),
        "[A-Za-z0-9 ]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["name", "id", "password", "items", "x", "apiKey"]).prop_map(String::from),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// JSON with object keys in reverse order and generous layout.
fn write_json_messy(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            out.push_str("{\n  ");
            for (i, (k, v)) in map.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n   ");
                }
                out.push_str(&format!("{} :  ", serde_json::to_string(k).expect("string")));
                write_json_messy(v, out);
            }
            out.push_str("\n}");
        }
        Value::Array(items) => {
            out.push_str("[ ");
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n ");
                }
                write_json_messy(v, out);
            }
            out.push_str(" ]");
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn lines_of(n: &[NormLine]) -> Vec<(String, String)> {
    n.iter().map(|l| (l.text.clone(), l.context.to_string())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// normalize(normalize(x)) == normalize(x) for line-oriented formats: the normalised lines, read again as that
    /// format, normalise to themselves (and keep their contexts where the block structure is in the lines).
    #[test]
    fn normalising_line_formats_is_idempotent(
        (format, text) in prop::sample::select(LINE_FORMATS.to_vec()).prop_flat_map(|f| (Just(f), filled(f)))
    ) {
        let once = normalize_as(format, &text, &key());
        let again: String = once.iter().map(|l| format!("{}\n", l.text)).collect();
        let twice = normalize_as(format, &again, &key());
        let texts = |lines: &[NormLine]| lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>();
        prop_assert_eq!(texts(&once), texts(&twice), "{:?}:\n{}", format, text);
        if CONTEXT_STABLE.contains(&format) {
            prop_assert_eq!(lines_of(&once), lines_of(&twice), "{:?}:\n{}", format, text);
        }
    }

    /// XML normalises to lines, not XML, so `normalize(normalize(x))` is not defined; the equivalent holds:
    /// a document and its canonical form (attributes sorted, volatile attributes and code comments dropped, layout
    /// made plain) normalise to the same lines.
    #[test]
    fn xml_normalises_like_its_canonical_form(root in element()) {
        let messy = normalize(Some("a.L5X"), document(&root, true).as_bytes(), &key()).expect("small");
        let canonical = normalize(Some("a.L5X"), document(&root, false).as_bytes(), &key()).expect("small");
        prop_assert_eq!(messy.format, Format::RockwellL5x);
        prop_assert_eq!(lines_of(&messy.lines), lines_of(&canonical.lines), "{}", document(&root, true));
    }

    /// The same for JSON: key order and layout do not matter.
    #[test]
    fn json_normalises_like_its_canonical_form(value in json_value()) {
        prop_assume!(value.is_object() || value.is_array());
        let mut messy_text = String::new();
        write_json_messy(&value, &mut messy_text);
        let canonical_text = serde_json::to_string(&value).expect("json");
        let messy = normalize(Some("a.json"), messy_text.as_bytes(), &key()).expect("small");
        let canonical = normalize(Some("a.json"), canonical_text.as_bytes(), &key()).expect("small");
        prop_assert_eq!(messy.format, Format::Json);
        prop_assert_eq!(lines_of(&messy.lines), lines_of(&canonical.lines), "{}", messy_text);
    }
}
