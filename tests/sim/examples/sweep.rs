//! Runs a range of seeds and prints a line per seed: `cargo run -p medchain-sim --example sweep
//! -- FIRST COUNT VALIDATORS` (`STRESS=1`: the stress mix; `STORM=1`: view-change storms). A
//! failing seed prints the command that replays it.

fn main() {
    let args: Vec<u64> =
        std::env::args().skip(1).map(|a| a.parse().expect("numbers: FIRST COUNT VALIDATORS")).collect();
    let (first, count, n) = match args.as_slice() {
        [a, b, c] => (*a, *b, *c as usize),
        _ => (0, 20, 4),
    };
    let mut failed = 0;
    for seed in first..first + count {
        let t = std::time::Instant::now();
        let config = if std::env::var_os("STORM").is_some() {
            sim::Config::view_change_storm(seed, n)
        } else if std::env::var_os("STRESS").is_some() {
            sim::Config::stress(seed, n)
        } else {
            sim::Config::for_seed(seed, n)
        };
        match sim::run_with(&config) {
            Ok(s) => println!("ok   {:.2}s {s:?}", t.elapsed().as_secs_f64()),
            Err(f) => {
                failed += 1;
                println!("FAIL {f}");
            }
        }
    }
    println!("{failed} of {count} failed");
}
