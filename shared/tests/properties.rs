//! Property tests of normalisation and diffs: no panics on any input, a file never differs from itself,
//! normalising twice changes nothing, and no secret ever reaches the output.

use datum_shared::diff::{diff, render};
use datum_shared::normalize::{mask_raw, normalize, FingerprintKey};
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
