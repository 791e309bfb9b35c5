//! The Python scripts' tests (`scripts/tests/`: checkpoint conversion, training, the generation loop),
//! run against this build's `engine` binary when a Python with PyTorch is at hand: `ENGINE_PYTHON`,
//! else `python3`. Without one the test prints why it skipped and passes; `make python-tests` sets up
//! a virtual environment from `scripts/requirements.txt` and runs them.

use std::path::Path;
use std::process::Command;

#[test]
fn python_scripts() {
    let python = std::env::var("ENGINE_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let probe = Command::new(&python)
        .args(["-c", "import torch, safetensors, tqdm"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            let reason = err.lines().last().unwrap_or("").to_string();
            eprintln!("skipped: `{python}` lacks torch/safetensors/tqdm ({reason}); set ENGINE_PYTHON or run `make python-tests`");
            return;
        }
        Err(e) => {
            eprintln!("skipped: no `{python}` ({e}); set ENGINE_PYTHON or run `make python-tests`");
            return;
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(&python)
        .args("-m unittest discover -s scripts/tests -t scripts/tests -v".split(' '))
        .current_dir(root)
        .env("ENGINE_BIN", env!("CARGO_BIN_EXE_engine"))
        .env("PYTHONDONTWRITEBYTECODE", "1") // no __pycache__ in the source tree
        .output()
        .expect("running the Python tests");
    // unittest reports on stderr; pass it on so `cargo test -- --nocapture` shows it.
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "Python tests failed (see above)");
}
