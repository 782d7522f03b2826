//! The benchmark standards, one source for both template benches (`shared/benches/templates.rs`, the engine
//! alone, and `tests/benches/compliance.rs`, the real binaries): twenty templates of fifty rules, eighteen for
//! one configuration format each, two inventory standards for every asset.

/// The text of template `t` (0..20); `format` is the configuration format it applies to (ignored for the two
/// inventory standards, `t >= 18`).
pub fn template_text(t: usize, format: &str) -> String {
    let inventory = t >= 18;
    let applies = if inventory { String::new() } else { format!("[applies]\nformat = [\"{format}\"]\n") };
    let mut text = format!("[template]\nid = \"t{t}\"\nversion = \"1.0.0\"\ntitle = \"bench {t}\"\n{applies}");
    for r in 0..50 {
        let rule = match (inventory, r % 6) {
            (true, n) if n % 2 == 0 => "field = \"owner\"\nrequired = true\n".to_string(),
            (true, _) => format!("field = \"firmware\"\nat_least_version = \"{r}.1\"\n"),
            (false, 0) => "require = \"^hostname\"\n".to_string(),
            (false, 1) => format!("forbid = \"^snmp-server community r{r}x\"\n"),
            (false, 2) => "within = \"^interface \"\nrequire = \"description\"\n".to_string(),
            (false, 3) => format!("key = \"PermitRootLogin{r}\"\nequals = \"no\"\n"),
            (false, 4) => format!("forbid = \"(telnet|http) server {r}$\"\n"),
            (false, _) => "field = \"owner\"\nrequired = true\n".to_string(),
        };
        text.push_str(&format!("[[rule]]\nid = \"R{r}\"\n{rule}"));
    }
    text
}
