//! The command line of a benchmark that runs without criterion's harness
//! (`harness = false`, one timed run of its own).

/// Reads this benchmark's command line. Test runners list a target's tests
/// first (nextest: `--list --format terse`): the benchmark is then one
/// test, `<name>_smoke`, never an ignored one, and `None` says it only
/// listed. `cargo bench` passes `--bench`: `Some(true)`, the full size;
/// anything else (nextest, `cargo test --benches`) is `Some(false)`, a
/// quick smoke run.
pub fn full_size(name: &str) -> Option<bool> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        if !args.iter().any(|a| a == "--ignored") {
            println!("{name}_smoke: test");
        }
        return None;
    }
    Some(args.iter().any(|a| a == "--bench"))
}
