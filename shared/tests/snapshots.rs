//! Snapshot tests of the readable diffs for representative real series (run with `UPDATE_EXPECT=1` to
//! refresh after an intended rule change, then review the diff of the snapshot files).

use std::path::Path;

use datum_shared::diff::{diff, render};
use datum_shared::normalize::{normalize, FingerprintKey};
use expect_test::expect_file;

fn rendered(stem: &str, ext: &str, from: u32, to: u32) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/versions");
    assert!(dir.is_dir(), "the kit is missing at {}", dir.display());
    let key = FingerprintKey([11; 32]);
    let read = |n: u32| {
        let name = format!("{stem}.v{n}.{ext}");
        let bytes = std::fs::read(dir.join(&name)).expect("fixture");
        normalize(Some(&name), &bytes, &key).expect("normalize")
    };
    render(&diff(&read(from), &read(to), false))
}

#[test]
fn cisco_bgp_and_acl_drift() {
    expect_file!["snapshots/cisco_as2dist1.txt"].assert_eq(&rendered("pybatfish_drift_as2dist1", "cfg", 1, 2));
}

#[test]
fn junos_interfaces_made_inactive() {
    expect_file!["snapshots/junos_delong_2_3.txt"].assert_eq(&rendered("scale_delong-sw02_juniper", "conf", 2, 3));
}

#[test]
fn junos_password_rehash_is_a_secret_change() {
    expect_file!["snapshots/junos_delong_3_4.txt"].assert_eq(&rendered("scale_delong-sw02_juniper", "conf", 3, 4));
}

#[test]
fn rockwell_module_rpi_change() {
    expect_file!["snapshots/l5x_ie4000_1_2.txt"].assert_eq(&rendered(
        "LogixLibraries_Dev_CiscoIE4000_Module",
        "L5X",
        1,
        2,
    ));
}

#[test]
fn windows_template_registry_value_added() {
    expect_file!["snapshots/gpttmpl_3_4.txt"].assert_eq(&rendered("WSHB_Win10_Computer_GptTmpl", "inf", 3, 4));
}

#[test]
fn sysctl_settings_changed() {
    expect_file!["snapshots/sysctl_2_3.txt"].assert_eq(&rendered("konstruktoid_sysctl.conf", "conf", 2, 3));
}

#[test]
fn noise_only_iosxr_capture() {
    expect_file!["snapshots/iosxr_1_2.txt"].assert_eq(&rendered("scrapli_iosxr_get_config", "txt", 1, 2));
}
