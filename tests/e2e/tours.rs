//! The README's tours, run as written (`examples/tour.sh`, `examples/hub-tour.sh`) with the binaries under test:
//! a tour that breaks fails the suite, so a newcomer's first commands keep working.

use datum_tests::{bin, workspace_root};

fn run_tour(script: &str) {
    let out = std::process::Command::new("bash")
        .arg(script)
        .current_dir(workspace_root())
        .env("E", bin("datum-edge"))
        .env("H", bin("datum-hub"))
        .env_remove("DATUM_DATA")
        .env_remove("DATUM_NOW")
        .env_remove("DATUM_LOG")
        .output()
        .expect("run bash");
    let shown = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{script} failed:\n{shown}");
    assert!(shown.contains("tour finished"), "{shown}");
}

#[test]
fn the_plant_tour_runs_as_written() {
    run_tour("examples/tour.sh");
}

#[test]
fn the_hub_tour_runs_as_written() {
    run_tour("examples/hub-tour.sh");
}
