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
fn absurdly_deep_xml_falls_back_to_text_quickly() {
    let depth = 100_000;
    let text = format!("<pfsense>{}{}</pfsense>", "<a>".repeat(depth), "</a>".repeat(depth));
    let started = std::time::Instant::now();
    let n = normalize(Some("config.xml"), text.as_bytes(), &key()).expect("normalize");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
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
