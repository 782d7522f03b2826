//! Tests of normalisation on small, hand-written inputs (the field fixtures are exercised in
//! `shared/tests/fixtures.rs`).

use super::*;

fn key() -> FingerprintKey {
    FingerprintKey([1; 32])
}

fn norm(name: &str, text: &str) -> Normalized {
    normalize(Some(name), text.as_bytes(), &key()).expect("normalize")
}

#[test]
fn cisco_noise_is_ignored_and_context_is_the_parent() {
    let a = norm("r1.cfg", "! Last configuration change at 10:00:01 UTC Mon Jan 1 2024\nhostname r1\n!\ninterface Gi0/1\n description uplink\n ip address 10.0.0.1 255.255.255.0\n!\nend\n");
    let b = norm("r1.cfg", "! Last configuration change at 11:12:13 UTC Tue Jan 2 2024\nhostname r1\n!\ninterface Gi0/1\n description uplink\n ip address 10.0.0.1 255.255.255.0\n!\nend\n");
    assert_eq!(a.format, Format::CiscoIos);
    assert_eq!(a.hash(), b.hash());
    let line = a.lines.iter().find(|l| l.text.contains("ip address")).expect("line");
    assert_eq!(&*line.context, "interface Gi0/1");
}

#[test]
fn sysctl_order_and_spacing_do_not_matter_but_values_do() {
    let a = norm("sysctl.conf", "net.ipv4.ip_forward=0\nkernel.kptr_restrict = 2\n");
    let b = norm("sysctl.conf", "kernel.kptr_restrict=2\nnet.ipv4.ip_forward = 0\n");
    let c = norm("sysctl.conf", "kernel.kptr_restrict=1\nnet.ipv4.ip_forward = 0\n");
    assert_eq!(a.format, Format::Sysctl);
    assert_eq!(a.hash(), b.hash());
    assert_ne!(a.hash(), c.hash());
}

#[test]
fn firewall_rule_order_matters() {
    let a =
        norm("rules", "*filter\n:INPUT DROP [10:200]\n-A INPUT -s 10.0.0.0/8 -j ACCEPT\n-A INPUT -j DROP\nCOMMIT\n");
    let b =
        norm("rules", "*filter\n:INPUT DROP [99:9999]\n-A INPUT -j DROP\n-A INPUT -s 10.0.0.0/8 -j ACCEPT\nCOMMIT\n");
    assert_eq!(a.format, Format::IptablesSave);
    assert_ne!(a.hash(), b.hash(), "reordered rules are a real change");
    let c =
        norm("rules", "*filter\n:INPUT DROP [99:9999]\n-A INPUT -s 10.0.0.0/8 -j ACCEPT\n-A INPUT -j DROP\nCOMMIT\n");
    assert_eq!(a.hash(), c.hash(), "counters are noise");
}

#[test]
fn too_large_input_is_refused() {
    let big = vec![b'a'; MAX_NORMALIZE_BYTES + 1];
    assert_eq!(normalize(None, &big, &key()).unwrap_err(), NormalizeError::TooLarge { size: MAX_NORMALIZE_BYTES + 1 });
}

#[test]
#[allow(clippy::disallowed_methods)] // A time limit on the test itself, not the core reading the clock.
fn absurdly_deep_xml_falls_back_to_text_quickly() {
    let depth = 100_000;
    let text = format!("<pfsense>{}{}</pfsense>", "<a>".repeat(depth), "</a>".repeat(depth));
    let started = std::time::Instant::now();
    let n = normalize(Some("config.xml"), text.as_bytes(), &key()).expect("normalize");
    // A guard against quadratic work (100,000² steps would take hours), not a speed figure: the bound leaves
    // room for a debug build on a loaded 2-core machine (5.4 s seen there; well under 1 s idle).
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
    assert!(!n.lines.is_empty());
}

#[test]
fn lines_of_one_block_share_one_context() {
    // One allocation per block or element, not one per line (the 1 MiB XML budget depends on it).
    let cisco = norm(
        "r1.cfg",
        "hostname r1\n!\ninterface Gi0/1\n description uplink\n ip address 10.0.0.1 255.255.255.0\n!\nend\n",
    );
    let in_block: Vec<&NormLine> = cisco.lines.iter().filter(|l| l.text.starts_with(' ')).collect();
    assert_eq!(in_block.len(), 2);
    assert!(Arc::ptr_eq(&in_block[0].context, &in_block[1].context));
    let xml = norm(
        "x.xml",
        "<project xmlns=\"http://www.plcopen.org/xml/tc6_0200\"><pou name=\"A\"><ST>a := 1;\nb := 2;</ST></pou></project>",
    );
    let st: Vec<&NormLine> = xml.lines.iter().filter(|l| &*l.context == "project/pou[A]/ST").collect();
    assert_eq!(st.len(), 3, "{:?}", xml.lines);
    assert!(st.windows(2).all(|w| Arc::ptr_eq(&w[0].context, &w[1].context)));
    assert_eq!(st[1].text, "project/pou[A]/ST: a := 1;");
}

fn shown(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    lines.into_iter().map(|l| secrets::without_fingerprints(&l)).collect()
}

#[test]
fn community_names_are_secret_inside_their_block() {
    let forti = "#config-version=FGT60F-7.2.5-FW-build1517-230606:opmode=0:vdom=0\nconfig system snmp community\n    edit 1\n        set name \"public\"\n        config hosts\n            edit 1\n                set ip 10.0.0.5 255.255.255.255\n            next\n        end\n    next\nend\nconfig system interface\n    edit \"port1\"\n        set name \"wan1\"\n    next\nend\n";
    let n = norm("fw.conf", forti);
    assert_eq!(n.format, Format::FortiOs);
    let texts = shown(n.lines.iter().map(|l| l.text.clone()));
    assert!(texts.contains(&"set name <secret>".to_string()), "{texts:?}");
    assert!(texts.contains(&"set name \"wan1\"".to_string()), "outside the block a name is a name: {texts:?}");
    assert!(!texts.iter().any(|t| t.contains("public")));
    let raw = shown(mask_raw(forti, &key()));
    assert_eq!(raw[3], "        set name <secret>");
    assert_eq!(raw[13], "        set name \"wan1\"");

    let routeros = "# 2024-01-01 12:00:00 by RouterOS 7.15.2\n/snmp community\nset [ find default=yes ] name=xyzzy1\nadd addresses=10.0.0.0/8 name=\"plant ro\"\n/snmp\nset enabled=yes\n/ip address\nadd address=10.0.0.1/24 interface=ether1 name=keepme\n";
    let n = norm("r.rsc", routeros);
    assert_eq!(n.format, Format::MikroTik);
    let texts = shown(n.lines.iter().map(|l| l.text.clone()));
    assert_eq!(
        texts,
        [
            "/snmp community",
            "set [ find default=yes ] name=<secret>",
            "add addresses=10.0.0.0/8 name=<secret>",
            "/snmp",
            "set enabled=yes",
            "/ip address",
            "add address=10.0.0.1/24 interface=ether1 name=keepme",
        ]
    );
    let raw = shown(mask_raw(routeros, &key()));
    assert_eq!(raw[2], "set [ find default=yes ] name=<secret>");
    assert_eq!(raw[3], "add addresses=10.0.0.0/8 name=<secret>");
    // The community named in a `find`, and the one-line form (where `community` alone already masks the rest).
    let raw = shown(mask_raw(
        "/snmp community\nset [ find name=abc123 ] name=def456\n/snmp community add name=ghi789\n",
        &key(),
    ));
    assert_eq!(raw, ["/snmp community", "set [ find name=<secret> ] name=<secret>", "/snmp community <secret>"]);
}

#[test]
fn raw_routeros_values_wrapped_onto_the_next_line_are_masked() {
    let text = "/ip ipsec peer\nadd address=192.0.2.1/32 comment=\"site b\" name=peer-b \\\n    secret=WrappedS3cret\n/ppp secret\nadd name=bob password=Spl\\\n    itValue99 service=pppoe\n";
    let raw = mask_raw(text, &key());
    assert_eq!(raw.len(), 6, "line numbers of the raw diff stay those of the file: {raw:?}");
    let joined = raw.join("\n");
    for leak in ["WrappedS3cret", "Spl", "itValue99"] {
        assert!(!joined.contains(leak), "{leak} leaked:\n{joined}");
    }
    let raw = shown(raw);
    assert_eq!(raw[1], "add address=192.0.2.1/32 comment=\"site b\" name=peer-b \\");
    assert_eq!(raw[2], "    secret=<secret>");
    assert_eq!(raw[4], "add name=bob password=<secret>\\");
    assert_eq!(raw[5], "    <secret>");
    // The normalised lines join the wrap, so they mask it too.
    let n = norm("r.rsc", &format!("# 2024-01-01 by RouterOS 7.1\n{text}"));
    assert!(n.lines.iter().all(|l| !l.text.contains("itValue99") && !l.text.contains("WrappedS3cret")));
}

#[test]
fn masks_are_not_masked_again() {
    // Normalised text fed again (and text that carries masks) keeps its masks as they are.
    for line in [
        "enable secret <secret:0123abcd>",
        "x <secret:0123abcd> y",
        "set name <private key:0123abcd>",
        "ca-key <private key:0123abcd>",
    ] {
        assert_eq!(secrets::mask_line(line, &key()).0, line);
    }
    let n = norm("k.cfg", "hostname r1\ncrypto pki key\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nend\n");
    let masked: Vec<&str> = n.lines.iter().map(|l| l.text.as_str()).filter(|t| t.contains("private key")).collect();
    assert_eq!(masked.len(), 1, "{:?}", n.lines);
    assert!(masked[0].starts_with("<private key:") && masked[0].ends_with('>') && masked[0].len() == 22, "{masked:?}");
}

#[test]
fn the_noise_prefilter_reads_first_bytes_conservatively() {
    assert_eq!(first_bytes_of(r"^!!?\s*Last"), Some(b"!".to_vec()));
    assert_eq!(first_bytes_of(r"^\s*ntp clock-period\s"), Some(b"\t\n\x0B\x0C\r n".to_vec()));
    assert_eq!(first_bytes_of(r"^(?:Mon|Tue) \d"), Some(b"MT".to_vec()));
    for any in [r"^\s*$", r"^a|b", r"^(?i)a", r"^[ab]", r"^\.x", r"^a{0,2}b", r"^(?:a|)b", r"^(?:a.|b)"] {
        assert_eq!(first_bytes_of(any), None, "{any}");
    }
}

#[test]
fn only_plain_literal_lines_are_tested_without_the_regex() {
    assert_eq!(literal_line(r"^!\s*$"), Some("!"));
    assert_eq!(literal_line(r"^## end\s*$"), Some("## end"));
    for pattern in [r"^!Time:", r"^a.b\s*$", r"^(?:x)\s*$", r"^\s*$", r"^x+\s*$", r"!\s*$"] {
        assert_eq!(literal_line(pattern), None, "{pattern}");
    }
    let noise = FormatNoise::new(Format::CiscoIos);
    assert!(noise.is_noise("!", false) && noise.is_noise("!  \t", false));
    assert!(!noise.is_noise("!\u{3000}", false), "Unicode white space is not `\\s` in the rules");
    assert!(!noise.is_noise("! x", false) && !noise.is_noise("!!", false));
}

#[test]
fn the_noise_prefixes_are_read_conservatively() {
    let one = |skip: bool, p: &str| Some((skip, vec![p.to_string()]));
    assert_eq!(literal_prefixes(r"^!!?\s*Last"), one(false, "!"));
    assert_eq!(literal_prefixes(r"^\s*ntp clock-period\s"), one(true, "ntp clock-period"));
    assert_eq!(literal_prefixes(r"^: Written by .* at "), one(false, ": Written by "));
    assert_eq!(literal_prefixes(r"^ab+c"), one(false, "ab"));
    assert_eq!(literal_prefixes(r"^ab{0,2}c"), one(false, "a"));
    assert_eq!(literal_prefixes(r"^\s*$"), one(true, ""));
    assert_eq!(literal_prefixes(r"^(?:Mon|Tue) \d"), Some((false, vec!["Mon".to_string(), "Tue".to_string()])));
    for any in [r"^a|b", r"^(?i)a", r"^(?:a|b)?c", r"^\s* a", r"x"] {
        assert_eq!(literal_prefixes(any), None, "{any}");
    }
}

#[test]
fn the_noise_prefilter_passes_over_no_noise_line_of_the_kit() {
    // Each kit file's lines through the prefiltered rules of its format and of plain text, against every rule of
    // those formats run alone.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let mut dirs = vec![root];
    let (mut files, mut noise_lines) = (0, 0);
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the kit").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("fixture");
            let Some(text) = text::decode(&bytes).1 else { continue };
            files += 1;
            for format in [detect(path.file_name().and_then(|n| n.to_str()), &text), Format::Text] {
                let noise = FormatNoise::new(format);
                let floating = noise.floating_in(&text);
                let rules: Vec<Regex> = NOISE
                    .iter()
                    .filter(|n| n.formats.contains(&format))
                    .flat_map(|n| n.rules.iter().map(|(p, _)| Regex::new(&ascii_classes(p)).expect("valid")))
                    .collect();
                for line in text.lines().map(|l| l.trim_end_matches('\r').trim_end()) {
                    let expected = rules.iter().any(|re| re.is_match(line));
                    assert_eq!(noise.is_noise(line, floating), expected, "{path:?} {format:?} {line:?}");
                    noise_lines += usize::from(expected);
                }
            }
        }
    }
    assert!(files > 200 && noise_lines > 100, "{files} files, {noise_lines} noise lines");
}

#[test]
fn lines_are_split_and_trimmed_as_str_lines_does() {
    for text in
        ["", "\n", "a", "a\n", "a\r\nb\r\n", "a\n\nb", " x \t\r\n\u{a0}y\u{a0} \n", "z\u{3000}\r", "\r\n\r", "é \n"]
    {
        let expected: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r').trim_end()).collect();
        assert_eq!(trimmed_lines(text).collect::<Vec<_>>(), expected, "{text:?}");
    }
}
