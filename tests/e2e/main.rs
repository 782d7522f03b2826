//! End-to-end tests: the real `datum-edge` and `datum-hub` binaries through a plant's life and its federation.

mod compliance;
mod crash;
mod diffs;
mod evidence;
mod federation;
mod hub_dashboard;
mod hub_users;
mod identity;
mod leaks;
mod life;
mod newcomer;
mod outage;
mod restore;
mod review_fixes;
mod rollback;
mod tamper;
mod templates;
mod tours;
mod waivers;
