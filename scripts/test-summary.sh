#!/usr/bin/env bash
# Reads a `cargo test` log and prints, per test binary, how many tests passed, failed and were
# skipped ("ignored": no GPU, no PyTorch, no browser), with each skip's reason, then one line for
# the GPU, Python and browser tests, so a CI log says what did not run.   Usage: scripts/test-summary.sh LOG
set -euo pipefail
awk '
/^     Running / { bin = ($2 == "unittests") ? $3 : $2 }
/^   Doc-tests / { bin = "doc-tests " $2 }
match($0, /test [^ ]+ +\.\.\. ignored.*/) { reasons[bin] = reasons[bin] "      " substr($0, RSTART) "\n" }
/^test result:/ {
    passed = failed = ignored = 0
    if (match($0, /[0-9]+ passed/)) passed = substr($0, RSTART, RLENGTH) + 0
    if (match($0, /[0-9]+ failed/)) failed = substr($0, RSTART, RLENGTH) + 0
    if (match($0, /[0-9]+ ignored/)) ignored = substr($0, RSTART, RLENGTH) + 0
    if (passed + failed + ignored > 0) {
        printf "  %-28s %4d passed %3d failed %3d skipped\n", bin, passed, failed, ignored
        printf "%s", reasons[bin]
    }
    ran[bin] = passed + failed; skipped[bin] = ignored
}
function tally(b) { return (b in ran) ? sprintf("%d ran, %d skipped", ran[b], skipped[b]) : "did not run" }
END {
    printf "GPU tests (tests/gpu.rs): %s; Python tests (tests/python_scripts.rs): %s; browser test (tests/serve_browser.rs): %s\n",
        tally("tests/gpu.rs"), tally("tests/python_scripts.rs"), tally("tests/serve_browser.rs")
}' "$1"
