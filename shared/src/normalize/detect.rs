//! Format detection from content, with the file name only as a tie-breaker.

use serde::Serialize;

/// The formats Datum understands. `Text` and `Binary` are the fallbacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    CiscoIos,
    CiscoNxos,
    CiscoIosXr,
    CiscoAsa,
    JunosCurly,
    JunosSet,
    FortiOs,
    PfSense,
    OpnSense,
    MikroTik,
    IptablesSave,
    Nftables,
    Firewalld,
    /// Indented CLI configs of other vendors (Arista, Aruba, VyOS, HP/Comware, AirOS…).
    NetworkCli,
    OpenWrtUci,
    RockwellL5x,
    SimaticMl,
    Step7Source,
    PlcOpen,
    TwinCat,
    /// B&R Automation Studio and Schneider XML exports, HMI XML projects, other XML.
    Xml,
    Sysctl,
    SshdConfig,
    AuditRules,
    /// `key = value` files (auditd.conf, AirOS system.cfg, firewalld.conf, …).
    KeyValue,
    WindowsInf,
    Csv,
    Json,
    Text,
    Binary,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::CiscoIos => "cisco-ios",
            Format::CiscoNxos => "cisco-nxos",
            Format::CiscoIosXr => "cisco-ios-xr",
            Format::CiscoAsa => "cisco-asa",
            Format::JunosCurly => "junos",
            Format::JunosSet => "junos-set",
            Format::FortiOs => "fortios",
            Format::PfSense => "pfsense",
            Format::OpnSense => "opnsense",
            Format::MikroTik => "mikrotik",
            Format::IptablesSave => "iptables-save",
            Format::Nftables => "nftables",
            Format::Firewalld => "firewalld",
            Format::NetworkCli => "network-cli",
            Format::OpenWrtUci => "openwrt-uci",
            Format::RockwellL5x => "rockwell-l5x",
            Format::SimaticMl => "siemens-simaticml",
            Format::Step7Source => "siemens-step7-source",
            Format::PlcOpen => "plcopen-xml",
            Format::TwinCat => "twincat",
            Format::Xml => "xml",
            Format::Sysctl => "sysctl",
            Format::SshdConfig => "sshd-config",
            Format::AuditRules => "audit-rules",
            Format::KeyValue => "key-value",
            Format::WindowsInf => "windows-inf",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Text => "text",
            Format::Binary => "binary",
        }
    }

    pub fn is_xml(self) -> bool {
        matches!(
            self,
            Format::PfSense
                | Format::OpnSense
                | Format::Firewalld
                | Format::RockwellL5x
                | Format::SimaticMl
                | Format::PlcOpen
                | Format::TwinCat
                | Format::Xml
        )
    }
}

/// Detects the format of decoded text. `name` (a file name) only decides between formats the content cannot
/// tell apart.
pub fn detect(name: Option<&str>, text: &str) -> Format {
    let name = name.unwrap_or("").to_ascii_lowercase();
    let head: &str = &text[..floor_char_boundary(text, 64 * 1024)];
    let trimmed = head.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('<') {
        return detect_xml(&name, trimmed);
    }
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && serde_json::from_str::<serde_json::Value>(text.trim_start_matches('\u{feff}')).is_ok()
    {
        return Format::Json;
    }
    let lines: Vec<&str> = head.lines().map(str::trim_end).collect();
    let any = |p: &dyn Fn(&str) -> bool| lines.iter().any(|l| p(l));
    let count = |p: &dyn Fn(&str) -> bool| lines.iter().filter(|l| p(l)).count();
    let starts = |prefix: &'static str| move |l: &str| l.starts_with(prefix);

    // Windows security templates.
    if any(&|l| l.eq_ignore_ascii_case("[unicode]") || l.eq_ignore_ascii_case("[version]"))
        && any(&|l| l.to_ascii_lowercase().starts_with("signature="))
    {
        return Format::WindowsInf;
    }
    // Firewalls and network operating systems.
    // FortiOS: `config …` / `edit N` / `set …` / `next` blocks (also a bare snippet of `edit` blocks).
    let forti_edits = count(&|l| l.trim_start().starts_with("edit ")) > 0
        && count(&|l| l.trim() == "next") > 0
        && count(&|l| l.trim_start().starts_with("set ")) > 0;
    if any(&starts("#config-version=")) || forti_edits {
        return Format::FortiOs;
    }
    if any(&|l| l.starts_with('#') && l.contains("by RouterOS"))
        || count(&|l| l.starts_with("/ip ") || l.starts_with("/interface ") || l.starts_with("/system ")) >= 2
    {
        return Format::MikroTik;
    }
    let iptables_table =
        any(&starts("*filter")) || any(&starts("*nat")) || any(&starts("*mangle")) || any(&starts("*raw"));
    if iptables_table && any(&starts("COMMIT")) {
        return Format::IptablesSave;
    }
    if any(&|l| l.starts_with("table ") && l.trim_end().ends_with('{')) || any(&starts("#!/usr/sbin/nft")) {
        return Format::Nftables;
    }
    if any(&starts("## Last commit:"))
        || any(&starts("## Last changed:"))
        || any(&starts("version ")) && any(&|l| l.trim_end() == "system {")
    {
        return Format::JunosCurly;
    }
    if count(&|l| l.starts_with("set ") || l.starts_with("deactivate ")) * 2
        > lines.iter().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count().max(1)
        && any(&|l| {
            l.starts_with("set system ")
                || l.starts_with("set interfaces ")
                || l.starts_with("set firewall ")
                || l.starts_with("set protocols ")
        })
    {
        return Format::JunosSet;
    }
    if any(&|l| l.trim_end() == "system {" || l.trim_end() == "interfaces {")
        && count(&|l| l.trim_end().ends_with('{')) >= 3
    {
        return Format::JunosCurly;
    }
    if any(&starts("ASA Version")) || any(&starts(": Saved")) && any(&starts("access-list ")) {
        return Format::CiscoAsa;
    }
    if any(&starts("!! IOS XR")) || any(&|l| l.starts_with("!! Last configuration change")) {
        return Format::CiscoIosXr;
    }
    if any(&starts("!Command: show running-config")) || (any(&starts("feature ")) && any(&starts("interface "))) {
        return Format::CiscoNxos;
    }
    let cisco_markers = count(&|l| {
        l.starts_with("hostname ")
            || l.starts_with("interface ")
            || l == "!"
            || l.starts_with("version 1")
            || l.starts_with("service ")
            || l.starts_with("ip route ")
            || l.starts_with("router ")
            || l.starts_with("line vty")
            || l.starts_with("ip access-list")
            || l.starts_with("access-list ")
    });
    if cisco_markers >= 3 && any(&|l| l == "!" || l.starts_with("end")) {
        return Format::CiscoIos;
    }
    // OpenWrt UCI.
    if count(&|l| l.starts_with("config ")) >= 1
        && count(&|l| l.trim_start().starts_with("option ") || l.trim_start().starts_with("list ")) >= 1
        && !any(&|l| l.trim_start().starts_with("edit "))
    {
        return Format::OpenWrtUci;
    }
    // PLC sources.
    let upper = |l: &str| l.trim_start().to_ascii_uppercase();
    if any(&|l| {
        let u = upper(l);
        u.starts_with("ORGANIZATION_BLOCK")
            || u.starts_with("FUNCTION_BLOCK")
            || u.starts_with("DATA_BLOCK")
            || u.starts_with("FUNCTION ")
            || u.starts_with("TYPE ")
    }) && any(&|l| upper(l).starts_with("END_"))
    {
        return Format::Step7Source;
    }
    // Linux hardening.
    if count(&|l| l.starts_with("-a ") || l.starts_with("-w ") || l.starts_with("-D") || l.starts_with("-b ")) >= 2 {
        return Format::AuditRules;
    }
    let sshd_keys = [
        "permitrootlogin",
        "passwordauthentication",
        "pubkeyauthentication",
        "usepam",
        "subsystem",
        "x11forwarding",
        "challengeresponseauthentication",
        "hostkey",
        "kbdinteractiveauthentication",
    ];
    if count(&|l| {
        let first = l.trim_start().trim_start_matches('#').split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        sshd_keys.contains(&first.as_str())
    }) >= 2
        || name.contains("sshd_config")
    {
        return Format::SshdConfig;
    }
    let kv = count(&|l| {
        let l = l.trim();
        !l.starts_with('#')
            && !l.starts_with(';')
            && l.split_once('=').is_some_and(|(k, _)| !k.trim().is_empty() && !k.trim().contains(' '))
    });
    let content = lines
        .iter()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && !l.trim_start().starts_with(';'))
        .count();
    if content > 0 && kv * 10 >= content * 8 {
        let sysctl = count(&|l| {
            let k = l.split('=').next().unwrap_or("").trim();
            (k.starts_with("net.") || k.starts_with("kernel.") || k.starts_with("fs.") || k.starts_with("vm."))
                && k.contains('.')
        });
        if sysctl * 2 >= kv || name.contains("sysctl") {
            return Format::Sysctl;
        }
        return Format::KeyValue;
    }
    // Other indented network CLIs.
    if count(&|l| l.starts_with("interface ") || l.starts_with("vlan ") || l.starts_with("hostname ")) >= 2 {
        return Format::NetworkCli;
    }
    if name.ends_with(".csv") || looks_like_csv(&lines) {
        return Format::Csv;
    }
    Format::Text
}

fn looks_like_csv(lines: &[&str]) -> bool {
    let content: Vec<&&str> = lines.iter().filter(|l| !l.trim().is_empty()).take(20).collect();
    if content.len() < 2 {
        return false;
    }
    let commas = content[0].matches(',').count();
    commas >= 2 && content.iter().all(|l| l.matches(',').count() >= commas)
}

fn detect_xml(name: &str, text: &str) -> Format {
    let root = root_element(text).unwrap_or_default();
    match root.as_str() {
        "RSLogix5000Content" => Format::RockwellL5x,
        "TcPlcObject" => Format::TwinCat,
        "Document" if text.contains("<Engineering") || text.contains("SW.") => Format::SimaticMl,
        "project" if text.contains("plcopen.org") => Format::PlcOpen,
        "pfsense" => Format::PfSense,
        "opnsense" => Format::OpnSense,
        "zone" | "policy" | "service" | "ipset" | "helper" | "direct" => Format::Firewalld,
        "Project"
            if name.ends_with(".tsproj")
                || name.ends_with(".plcproj")
                || name.ends_with(".xti")
                || text.contains("TcSmProject") =>
        {
            Format::TwinCat
        }
        "TcSmProject" | "TcSmItem" => Format::TwinCat,
        _ => Format::Xml,
    }
}

/// The name of the first element, skipping the declaration, comments and processing instructions.
fn root_element(text: &str) -> Option<String> {
    let mut rest = text;
    loop {
        let start = rest.find('<')?;
        rest = &rest[start..];
        if rest.starts_with("<?") {
            rest = &rest[rest.find("?>")? + 2..];
        } else if rest.starts_with("<!--") {
            rest = &rest[rest.find("-->")? + 3..];
        } else if rest.starts_with("<!") {
            rest = &rest[rest.find('>')? + 1..];
        } else {
            let name: String = rest[1..].chars().take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/').collect();
            let local = name.rsplit(':').next().unwrap_or(&name).to_string();
            return Some(local);
        }
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}
