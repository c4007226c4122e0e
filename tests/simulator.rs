//! The deterministic cluster simulator over a fixed set of seeds: n = 4 and n = 7, each seed
//! with its own mix of drops, duplicates, delays, partitions, crashes with restart from storage,
//! and (for a third of them) an equivocating Byzantine primary. A failure names its seed and the
//! command that replays it.

use std::time::Instant;

/// Runs `seeds` with `validators` replicas; reports every failure, not only the first.
fn run_seeds(seeds: std::ops::Range<u64>, validators: usize) {
    run_configs(seeds, validators, sim::Config::for_seed);
}

fn run_configs(seeds: std::ops::Range<u64>, validators: usize, config: fn(u64, usize) -> sim::Config) {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut views = 0;
    let count = seeds.end - seeds.start;
    for seed in seeds {
        match sim::run_with(&config(seed, validators)) {
            Ok(s) => views += s.max_view,
            Err(f) => failures.push(f.to_string()),
        }
    }
    eprintln!(
        "{count} seeds with n = {validators}: {} failed, {views} view changes in all, {:.1} s",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{} of {count} seeds failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn seeds_0_to_70_with_4_validators() {
    run_seeds(0..70, 4);
}

#[test]
fn seeds_70_to_140_with_4_validators() {
    run_seeds(70..140, 4);
}

#[test]
fn seeds_1000_to_1050_with_7_validators() {
    run_seeds(1000..1050, 7);
}

#[test]
fn seeds_1050_to_1100_with_7_validators() {
    run_seeds(1050..1100, 7);
}

#[test]
fn a_seed_replays_identically() {
    let a = sim::run(42, 7).unwrap_or_else(|f| panic!("{f}"));
    let b = sim::run(42, 7).unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

#[test]
fn a_failure_names_its_seed_and_the_replay_command() {
    // A seed's own mix replays from the CLI.
    let cli = sim::replay_command(&sim::Config::for_seed(9, 4));
    assert_eq!(cli, "medchain sim --seed 9 --validators 4");
    // Liveness cannot hold with no time to reach the target: the failure names the seed and,
    // as the config is not the seed's own, the config to replay.
    let mut config = sim::Config::for_seed(9, 4);
    config.liveness_ms = 0;
    config.liveness_blocks = 1_000;
    let failure = sim::run_with(&config).expect_err("a target of 1000 blocks in 0 ms cannot be met");
    let text = failure.to_string();
    assert!(text.contains("seed 9") && text.contains("liveness") && text.contains("sim::run_with"), "{text}");
}

#[test]
fn view_change_storms_settle_with_4_validators() {
    run_configs(2000..2015, 4, sim::Config::view_change_storm);
}

#[test]
fn view_change_storms_settle_with_7_validators() {
    run_configs(3000..3008, 7, sim::Config::view_change_storm);
}
