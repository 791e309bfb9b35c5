//! A test harness whose tests may skip at run time with a reason that shows in `cargo test`'s
//! own output (`test name ... ignored (<reason>)`, counted under "ignored" in the summary),
//! never as a silent pass. For tests that need something this machine may lack: a GPU, a
//! Python with PyTorch. Test binaries using it set `harness = false` in Cargo.toml and list
//! their tests with [`tests!`]; the usual flags (filters, `--list`, `--test-threads`) work.

use libtest_mimic::{Arguments, Completion, Trial};
use std::process::ExitCode;

/// Why a test could not run here.
#[derive(Debug)]
pub struct Skip(pub String);

/// What a test returns: `Ok` when it ran and passed (failures panic), `Err(Skip)` when it
/// could not run here.
pub type Outcome = Result<(), Skip>;

/// A test: its name and its function.
pub type Test = (&'static str, fn() -> Outcome);

/// Runs `tests` under the command line's arguments.
pub fn run(tests: &[Test]) -> ExitCode {
    let trials = tests
        .iter()
        .map(|&(name, test)| {
            Trial::ignorable_test(name, move || match test() {
                Ok(()) => Ok(Completion::Completed),
                Err(Skip(reason)) => Ok(Completion::ignored_with(reason)),
            })
        })
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit_code()
}

/// `tests![a, b]`: the test functions `a` and `b` under their own names, for [`run`].
#[macro_export]
macro_rules! tests {
    ($($test:ident),* $(,)?) => {
        &[$((stringify!($test), $test as fn() -> $crate::harness::Outcome)),*]
    };
}
