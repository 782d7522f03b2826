//! A seeded simulation of one hub and several edges: edges and hub write while links come and go, frames are
//! dropped, duplicated and reordered, connections are cut and nodes restart (keeping only their disk). After
//! the faults stop and every edge reconnects, every change must be everywhere it belongs, once, and every
//! configuration file must be at the hub.
//!
//! A failing run prints its seed; `DATUM_SIM_SEED=<n> cargo test -p datum-shared --test sync_sim` replays it.

mod support;

use std::collections::BTreeSet;

use support::*;

struct World {
    hub: Node,
    edges: Vec<Node>,
    links: Vec<Option<Link>>,
    hub_up: bool,
    rng: Rng,
    chunk: usize,
    /// Percent of deliveries that drop, duplicate or reorder a frame, each (3 in the pinned run).
    fault_percent: u64,
    log: Vec<String>,
}

const SITES: [&str; 3] = ["a1a1a1a1a1a1a1a1", "b2b2b2b2b2b2b2b2", "c3c3c3c3c3c3c3c3"];

impl World {
    fn new(seed: u64, fault_percent: u64) -> World {
        let mut rng = Rng::new(seed);
        let chunk = 1 + rng.below(16) as usize;
        World {
            hub: Node::hub(),
            edges: SITES.iter().map(|s| Node::edge(s)).collect(),
            links: SITES.iter().map(|_| None).collect(),
            hub_up: true,
            rng,
            chunk,
            fault_percent,
            log: Vec::new(),
        }
    }

    fn close(&mut self, i: usize, clean: bool) {
        if let Some(link) = self.links[i].take() {
            if clean {
                link.close(&mut self.edges[i], &mut self.hub);
            } else {
                // A crash of one side loses its sessions' in-memory sync states (its disk keeps older ones);
                // the other side may well have saved its own.
                if self.rng.chance(50) {
                    save_states(&mut self.edges[i], "hub", &link.a);
                }
                if self.rng.chance(50) {
                    let name = self.edges[i].name.clone();
                    save_states(&mut self.hub, &name, &link.b);
                }
            }
        }
    }

    fn step(&mut self, faults: bool) {
        let n = self.edges.len() as u64;
        let i = self.rng.below(n) as usize;
        match self.rng.below(100) {
            0..=11 => {
                let docs = site_docs(SITES[i]);
                let doc = docs[self.rng.below(docs.len() as u64) as usize].clone();
                let am = self.edges[i].write(&doc, &mut self.rng);
                self.log.push(format!("edge {i} writes {doc}"));
                if let Some(link) = self.links[i].as_mut() {
                    link.a.local_changed(&doc, am);
                    let out = drive(&mut self.edges[i], "hub", &mut link.a, self.chunk, &mut link.a_out);
                    link.a_to_b.extend(out);
                }
            }
            12..=14 => {
                let am = self.hub.write(&hub_doc(), &mut self.rng);
                self.log.push("hub writes".into());
                for (j, link) in self.links.iter_mut().enumerate() {
                    if let Some(link) = link.as_mut() {
                        link.b.local_changed(&hub_doc(), am.clone());
                        let out = drive(&mut self.hub, &self.edges[j].name, &mut link.b, self.chunk, &mut link.b_out);
                        link.b_sent.extend(out.iter().cloned());
                        link.b_to_a.extend(out);
                    }
                }
            }
            15..=24 => {
                if self.hub_up && self.links[i].is_none() {
                    self.log.push(format!("edge {i} connects"));
                    self.links[i] = Some(Link::open(&mut self.edges[i], &mut self.hub, self.chunk));
                }
            }
            25..=86 => self.deliver(i, faults),
            87..=89 => {
                let clean = self.rng.chance(50);
                self.log.push(format!("link {i} cut (clean: {clean})"));
                self.close(i, clean);
            }
            90..=91 => {
                self.log.push("hub restarts".into());
                for j in 0..self.links.len() {
                    self.close(j, false);
                }
            }
            92..=94 => {
                self.log.push(format!("edge {i} restarts"));
                self.close(i, false);
            }
            _ => {
                self.hub_up = !self.hub_up;
                self.log.push(format!("hub up: {}", self.hub_up));
                if !self.hub_up {
                    for j in 0..self.links.len() {
                        let clean = self.rng.chance(50);
                        self.close(j, clean);
                    }
                }
            }
        }
    }

    fn deliver(&mut self, i: usize, faults: bool) {
        let forward = self.rng.chance(50);
        let Some(link) = self.links[i].as_mut() else { return };
        let queue = if forward { &mut link.a_to_b } else { &mut link.b_to_a };
        if faults && !queue.is_empty() {
            let p = self.fault_percent;
            match self.rng.below(100) {
                x if x < p => {
                    self.log.push(format!("link {i}: frame dropped"));
                    queue.pop_front();
                    link.faulted = true;
                }
                x if x < 2 * p => {
                    self.log.push(format!("link {i}: frame duplicated"));
                    let f = queue.front().cloned().expect("not empty");
                    queue.push_front(f);
                    link.faulted = true;
                }
                x if x < 3 * p && queue.len() > 1 => {
                    self.log.push(format!("link {i}: frames reordered"));
                    queue.swap(0, 1);
                    link.faulted = true;
                }
                _ => {}
            }
        }
        link.deliver(&mut self.edges[i], &mut self.hub, forward, self.chunk);
        let dead = link.a.is_closed()
            || link.b.is_closed()
            || !link.a_out.violations.is_empty()
            || !link.b_out.violations.is_empty();
        if dead {
            assert!(
                link.faulted,
                "a session failed on a link without any injected fault: {:?} {:?}",
                link.a_out, link.b_out
            );
            assert!(
                link.a_out.violations.is_empty() && link.b_out.violations.is_empty(),
                "honest peers never break a rule: {:?} {:?}",
                link.a_out,
                link.b_out
            );
            // Only a fault ends a session early, and the transport then drops the connection.
            self.links[i] = None;
        }
    }

    /// Faults stop; every edge reconnects until everything converged (bounded rounds).
    fn heal(&mut self) {
        self.hub_up = true;
        for j in 0..self.links.len() {
            self.close(j, true);
        }
        for _round in 0..4 {
            for i in 0..self.edges.len() {
                let mut link = Link::open(&mut self.edges[i], &mut self.hub, self.chunk);
                link.run(&mut self.edges[i], &mut self.hub, self.chunk);
                let (e, h) = link.close(&mut self.edges[i], &mut self.hub);
                assert!(e.failed.is_empty() && h.failed.is_empty(), "clean link failed: {e:?} {h:?}");
                assert_eq!(e.synced, 1, "edge {i} got no confirmation: {e:?} {h:?}");
            }
        }
    }

    fn check(&self) {
        let hub = &self.hub;
        assert!(hub.disk.violations.is_empty(), "{:?}", hub.disk.violations);
        for (i, edge) in self.edges.iter().enumerate() {
            assert!(edge.disk.violations.is_empty(), "{:?}", edge.disk.violations);
            for doc in edge.disk.doc_ids() {
                assert_eq!(hub.disk.heads(&doc), edge.disk.heads(&doc), "edge {i}: {doc} differs from the hub");
            }
            assert_eq!(edge.disk.heads(&hub_doc()), hub.disk.heads(&hub_doc()), "edge {i}: hub document differs");
            for (hash, bytes) in &edge.disk.blobs {
                assert_eq!(hub.disk.blobs.get(hash), Some(bytes), "edge {i}: file {hash} missing at the hub");
            }
            // No other site's documents at an edge.
            for doc in edge.disk.doc_ids() {
                assert!(
                    doc.as_str().starts_with(&format!("site/{}/", SITES[i])) || doc.as_str().starts_with("hub/"),
                    "edge {i} holds {doc}"
                );
            }
        }
        assert!(hub.disk.partial.is_empty() && hub.disk.wanted.is_empty(), "files left half-received");
        let mut seen = BTreeSet::new();
        for (_, doc, change) in &hub.disk.received {
            assert!(seen.insert((doc.clone(), *change)), "change {change} of {doc} applied twice");
        }
        // Every change an edge made is at the hub exactly once (records equal, histories equal).
        for edge in &self.edges {
            for doc in edge.disk.doc_ids().into_iter().filter(|d| d.as_str().starts_with("site/")) {
                let ours = edge.disk.load(&doc).expect("doc");
                let theirs = hub.disk.load(&doc).expect("doc at hub");
                assert_eq!(ours.get_changes(&[]).len(), theirs.get_changes(&[]).len(), "{doc}");
            }
        }
    }
}

fn run(seed: u64, steps: usize, fault_percent: u64) {
    let mut world = World::new(seed, fault_percent);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for _ in 0..steps {
            world.step(true);
        }
        world.heal();
        world.check();
        world
    }));
    if let Err(e) = result {
        eprintln!("sync simulation failed with seed {seed}: replay with DATUM_SIM_SEED={seed}");
        std::panic::resume_unwind(e);
    }
}

/// One fixed seed replayed on every run, longer than any seed of the sweep and with the original fault rate;
/// pin here any seed that ever fails.
#[test]
fn pinned_seed_replays() {
    run(0x00D4_7A00, 600, 3);
}

/// Seeds of the sweep: many short runs, each with its own file chunk size, fault rate and schedule (the pinned
/// seed keeps one long history); their lengths keep the sweep as fast in a debug build as the 60 seeds of 400
/// steps it replaced.
const SEEDS: u64 = 500;

/// A seed's length (12 to 60 steps) and fault rate (3, 6, 9 or 12 percent per fault kind), derived from the seed
/// alone so that `DATUM_SIM_SEED` replays exactly the run that failed.
fn seed_plan(seed: u64) -> (usize, u64) {
    let steps = 12 + (seed % 49) as usize;
    let fault_percent = 3 * (1 + Rng::new(seed ^ 0xFA17).below(4));
    (steps, fault_percent)
}

#[test]
fn many_seeds_converge() {
    if let Some(seed) = std::env::var("DATUM_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        let (steps, fault_percent) = seed_plan(seed);
        return run(seed, steps, fault_percent);
    }
    for seed in 1..=SEEDS {
        let (steps, fault_percent) = seed_plan(seed);
        run(seed, steps, fault_percent);
    }
}

#[test]
fn faults_really_happen() {
    // The sweep must actually exercise what it claims to, short as its seeds are: every fault kind occurs,
    // a frame is dropped, duplicated or reordered in at least a quarter of the seeds, and a link is cut or a node
    // restarts in three quarters. Counted over the first 200 seeds of the sweep at their sweep lengths.
    const LINK_FAULTS: [&str; 3] = ["dropped", "duplicated", "reordered"];
    const NODE_FAULTS: [&str; 3] = ["cut", "restarts", "hub up: false"];
    let mut kinds = BTreeSet::new();
    let (mut seeds_with_link_fault, mut seeds_with_node_fault) = (0, 0);
    let n_seeds = 200;
    for seed in 1..=n_seeds {
        let (steps, fault_percent) = seed_plan(seed);
        let mut world = World::new(seed, fault_percent);
        for _ in 0..steps {
            world.step(true);
        }
        let seen = |kind: &str| world.log.iter().any(|line| line.contains(kind));
        kinds.extend(LINK_FAULTS.into_iter().chain(NODE_FAULTS).chain(["writes"]).filter(|k| seen(k)));
        seeds_with_link_fault += u64::from(LINK_FAULTS.iter().any(|k| seen(k)));
        seeds_with_node_fault += u64::from(NODE_FAULTS.iter().any(|k| seen(k)));
    }
    assert_eq!(kinds.len(), 7, "{kinds:?}");
    assert!(seeds_with_link_fault * 4 >= n_seeds, "frame faults in only {seeds_with_link_fault} of {n_seeds} seeds");
    assert!(seeds_with_node_fault * 4 >= n_seeds * 3, "cuts and restarts in only {seeds_with_node_fault} seeds");
}
