//! A few seeds of each size, printed, for quick iteration on the simulator itself.

#[test]
fn a_few_seeds_pass_and_replay_identically() {
    for (seed, n) in [(1u64, 4usize), (2, 7), (3, 4)] {
        let a = sim::run(seed, n).unwrap_or_else(|f| panic!("{f}"));
        let b = sim::run(seed, n).unwrap_or_else(|f| panic!("{f}"));
        println!("{a:?}");
        assert_eq!(format!("{a:?}"), format!("{b:?}"), "seed {seed} must replay identically");
    }
}
