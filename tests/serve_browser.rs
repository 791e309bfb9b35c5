//! The page of `engine serve` in a real browser: `scripts/serve_browser.py` drives headless Chromium through
//! Selenium against a running `engine serve` (this build's binary, on port 0, the CPU), plays a whole round and a full
//! game by clicks and keys, checking the page against the API; its screenshots go to `target/tmp/serve-browser/`.
//!
//! It needs a Python with Selenium (`ENGINE_PYTHON`, else `python3`; `make python-venv` installs it from
//! `scripts/requirements.txt`) and the system's Chromium and chromedriver (Debian: `apt-get install chromium
//! chromium-driver`; `CHROMIUM` and `CHROMEDRIVER` override their paths). Without them the test reports
//! `ignored (<why>)` (tests/harness); `ENGINE_REQUIRE_BROWSER=1` (set by CI) turns that into a failure.

mod harness;

use harness::{Outcome, Skip};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};

/// The Python with Selenium, Chromium and chromedriver, or why the test cannot run here.
fn browser() -> Result<String, Skip> {
    let python = std::env::var("ENGINE_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_string());
    let driver =
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".to_string());
    let selenium = Command::new(&python)
        .args(["-c", "import selenium"])
        .output();
    let why = match selenium {
        Ok(out) if out.status.success() => {
            let missing: Vec<&str> = [&chromium, &driver]
                .into_iter()
                .filter(|p| !Path::new(p).is_file())
                .map(String::as_str)
                .collect();
            if missing.is_empty() {
                return Ok(python);
            }
            format!(
                "no {} (apt-get install chromium chromium-driver)",
                missing.join(", ")
            )
        }
        Ok(_) => format!("`{python}` lacks selenium (set ENGINE_PYTHON or run `make python-venv`)"),
        Err(e) => format!("no `{python}` ({e})"),
    };
    if std::env::var("ENGINE_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("ENGINE_REQUIRE_BROWSER=1, but {why}");
    }
    Err(Skip(why))
}

/// `engine serve` on a free port; ends with the test.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `engine serve` and reads the address it prints.
fn serve() -> (Served, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args(["serve", "--device", "cpu", "--port", "0", "--threads", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting engine serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("engine serve prints its address");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (Served(child), url)
}

fn the_page_plays_a_round_and_a_full_game() -> Outcome {
    let python = browser()?;
    let (_served, url) = serve();
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-browser");
    let out = Command::new(&python)
        .args(["-m", "scripts.serve_browser", &url])
        .arg(&shots)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SE_OFFLINE", "true") // Selenium Manager must not download a browser or driver
        .output()
        .expect("running scripts.serve_browser");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the browser test failed (see above)");
    Ok(())
}

fn main() -> ExitCode {
    harness::run(tests![the_page_plays_a_round_and_a_full_game])
}
