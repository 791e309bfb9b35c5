//! Build script: compiles the CUDA kernels (`kernels/*.cu`) with nvcc into two fatbins, embeds
//! them as `$OUT_DIR/kernels.rs` (`BLOBNET_FATBIN`, the native build: machine code for every
//! supported GPU generation, each with as many weight stages as its shared memory holds;
//! `BLOBNET_PORTABLE_FATBIN`: compute_80 PTX of the 99 KB configuration, which the driver
//! compiles for any sm_80+ GPU) and sets the cfg `engine_kernels`.
//!
//! nvcc is looked up in `$NVCC`, `$CUDA_HOME/bin`, `$CUDA_PATH/bin`, `$PATH`, then the local
//! toolchain `scripts/install-cuda-toolchain.sh` installs (`.cuda/toolkit/bin`). Without nvcc
//! the build goes on CPU-only with a warning; `ENGINE_REQUIRE_CUDA_KERNELS=1` turns a missing
//! nvcc or a failed compile into an error. The target lists are fixed (native: sm_80, sm_86,
//! sm_89, sm_90 SASS + compute_90 PTX, `ENGINE_CUDA_GENCODE` replaces it; portable: compute_80
//! PTX), never probed from a GPU on the build machine. `ENGINE_NVCC_FLAGS` adds flags to the
//! native build for tuning experiments (`-DBLOB_STAGES=6`: the kernels report such launch
//! geometry to the host in their ABI block).
//! nvcc's output, with ptxas's register and shared-memory report per kernel, lands in
//! `$OUT_DIR/blobnet.nvcc.log` and `blobnet_portable.nvcc.log`. The compact input layout (`src/encode/compact_layout.rs`) and the
//! kernels' layout (`src/net/cuda/layout.rs`) are written out as `$OUT_DIR/compact_layout.cuh`
//! and `$OUT_DIR/blobnet_layout.cuh` for the kernels, so each is defined once.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

// Plain constants only; build.rs reads the layout, not every helper of it.
#[allow(dead_code)]
#[path = "src/encode/compact_layout.rs"]
mod compact_layout;

#[allow(dead_code, unexpected_cfgs)]
#[path = "src/net/cuda/layout.rs"]
mod layout;

/// The native build: machine code for Ampere (sm_80: A100; sm_86: RTX 30, A10), Ada (sm_89: RTX
/// 40, L4) and Hopper (sm_90), plus compute_90 PTX (which newer GPUs JIT). Each generation's code
/// keeps as many weight stages in shared memory as its blocks may hold (kernels/common.cuh).
const GENCODE: &[&str] = &[
    "-gencode",
    "arch=compute_80,code=sm_80",
    "-gencode",
    "arch=compute_86,code=sm_86",
    "-gencode",
    "arch=compute_89,code=sm_89",
    "-gencode",
    "arch=compute_90,code=[sm_90,compute_90]",
];
/// The portable build: compute_80 PTX with 2 weight stages (100,864 bytes of shared memory per
/// block, under the 99 KB of sm_86/sm_89): runs on any sm_80+ GPU through the driver's JIT, so
/// the consumer-GPU configuration can be checked on any GPU (`--cuda-kernel portable`).
const PORTABLE_GENCODE: &[&str] = &["-gencode", "arch=compute_80,code=compute_80"];
const PORTABLE_FLAGS: &[&str] = &["-DBLOB_STAGES=2"];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
    println!("cargo::rerun-if-changed=src/encode/compact_layout.rs");
    println!("cargo::rerun-if-changed=src/net/cuda/layout.rs");
    for var in [
        "NVCC",
        "CUDA_HOME",
        "CUDA_PATH",
        "ENGINE_REQUIRE_CUDA_KERNELS",
        "ENGINE_CUDA_GENCODE",
        "ENGINE_NVCC_FLAGS",
    ] {
        println!("cargo::rerun-if-env-changed={var}");
    }
    println!("cargo::rustc-check-cfg=cfg(engine_kernels)");
    println!("cargo::rustc-check-cfg=cfg(loom)");

    let required = env::var("ENGINE_REQUIRE_CUDA_KERNELS").is_ok_and(|v| v == "1");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));

    let sources = match kernel_sources(&manifest.join("kernels")) {
        Ok(sources) => sources,
        Err(e) => return give_up(required, &format!("cannot list kernels/: {e}")),
    };
    if sources.is_empty() {
        return give_up(required, "kernels/ holds no .cu file");
    }
    let Some(nvcc) = find_nvcc(&manifest) else {
        return give_up(
            required,
            "nvcc not found (looked in NVCC, CUDA_HOME, CUDA_PATH, PATH and .cuda/); \
             scripts/install-cuda-toolchain.sh installs it, then rebuild with \
             ENGINE_REQUIRE_CUDA_KERNELS=1",
        );
    };
    println!("cargo::rerun-if-changed={}", nvcc.display());

    let gencode: Vec<String> = match env::var("ENGINE_CUDA_GENCODE") {
        Ok(v) if !v.trim().is_empty() => v.split_whitespace().map(String::from).collect(),
        _ => GENCODE.iter().map(|s| s.to_string()).collect(),
    };
    let extra: Vec<String> = env::var("ENGINE_NVCC_FLAGS")
        .map(|v| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let portable_gencode: Vec<String> = PORTABLE_GENCODE.iter().map(|s| s.to_string()).collect();
    let portable_flags: Vec<String> = PORTABLE_FLAGS.iter().map(|s| s.to_string()).collect();
    let built = prepare(&out_dir, &sources).and_then(|unity| {
        let native = compile(
            &nvcc, &manifest, &out_dir, &unity, &gencode, &extra, "blobnet",
        )?;
        let portable = compile(
            &nvcc,
            &manifest,
            &out_dir,
            &unity,
            &portable_gencode,
            &portable_flags,
            "blobnet_portable",
        )?;
        Ok((native, portable))
    });
    match built {
        Ok((native, portable)) => {
            let rs = format!(
                "/// The BlobNet kernels (kernels/*.cu), native build.\n\
                 pub const BLOBNET_FATBIN: &[u8] = include_bytes!({:?});\n\
                 /// What the native fatbin holds: `sm_XY` machine code and `compute_XY` PTX.\n\
                 pub const BLOBNET_TARGETS: &[&str] = &{:?};\n\
                 /// The portable build (99 KB of shared memory per block, PTX).\n\
                 pub const BLOBNET_PORTABLE_FATBIN: &[u8] = include_bytes!({:?});\n\
                 pub const BLOBNET_PORTABLE_TARGETS: &[&str] = &{:?};\n",
                native.display().to_string(),
                code_targets(&gencode),
                portable.display().to_string(),
                code_targets(&portable_gencode)
            );
            fs::write(out_dir.join("kernels.rs"), rs).expect("write kernels.rs");
            println!("cargo::rustc-cfg=engine_kernels");
        }
        Err(e) => give_up(required, &format!("compiling the CUDA kernels failed: {e}")),
    }
}

/// Without kernels: a warning (CPU-only build) or, when they are required, a failed build.
fn give_up(required: bool, why: &str) {
    if required {
        eprintln!("error: ENGINE_REQUIRE_CUDA_KERNELS=1, but {why}");
        std::process::exit(1);
    }
    println!("cargo::warning=CPU-only build (no CUDA kernels): {why}");
}

/// `kernels/*.cu` (sorted), each also registered for `rerun-if-changed` with the headers.
fn kernel_sources(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut sources = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("cu") => {
                println!("cargo::rerun-if-changed={}", path.display());
                sources.push(path);
            }
            Some("cuh") => println!("cargo::rerun-if-changed={}", path.display()),
            _ => {}
        }
    }
    sources.sort();
    Ok(sources)
}

fn find_nvcc(manifest: &Path) -> Option<PathBuf> {
    let exe = |p: PathBuf| p.is_file().then_some(p);
    if let Some(nvcc) = env::var_os("NVCC").filter(|v| !v.is_empty()) {
        // An explicit NVCC wins; if it does not exist, say so rather than pick another.
        let nvcc = PathBuf::from(nvcc);
        return match exe(nvcc.clone()) {
            Some(p) => Some(p),
            None => {
                println!("cargo::warning=NVCC={} is not a file", nvcc.display());
                None
            }
        };
    }
    let homes = ["CUDA_HOME", "CUDA_PATH"]
        .into_iter()
        .filter_map(env::var_os)
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join("bin").join("nvcc"));
    let path = env::var_os("PATH")
        .map(|p| {
            env::split_paths(&p)
                .map(|d| d.join("nvcc"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let local = manifest
        .join(".cuda")
        .join("toolkit")
        .join("bin")
        .join("nvcc");
    homes
        .chain(path)
        .chain(std::iter::once(local))
        .find_map(exe)
}

/// Writes the generated headers and the unity file that includes every kernel source (so all
/// kernels share one fatbin, and one module at run time); returns the unity file.
fn prepare(out_dir: &Path, sources: &[PathBuf]) -> Result<PathBuf, String> {
    for (name, text) in [
        ("compact_layout.cuh", compact_layout_header()),
        ("blobnet_layout.cuh", blobnet_layout_header()),
    ] {
        let header = out_dir.join(name);
        fs::write(&header, text).map_err(|e| format!("write {}: {e}", header.display()))?;
    }
    let unity = out_dir.join("blobnet_all.cu");
    let body: String = sources
        .iter()
        .map(|s| format!("#include {:?}\n", s.display().to_string()))
        .collect();
    fs::write(&unity, body).map_err(|e| format!("write {}: {e}", unity.display()))?;
    Ok(unity)
}

/// One nvcc run of `unity` for `gencode` with `extra` flags into `$OUT_DIR/NAME.fatbin` (its
/// log in `NAME.nvcc.log`).
fn compile(
    nvcc: &Path,
    manifest: &Path,
    out_dir: &Path,
    unity: &Path,
    gencode: &[String],
    extra: &[String],
    name: &str,
) -> Result<PathBuf, String> {
    let fatbin = out_dir.join(format!("{name}.fatbin"));
    let output = Command::new(nvcc)
        .arg("-fatbin")
        .args(gencode)
        .args(extra)
        .args([
            "-O3",
            "-std=c++17",
            "-lineinfo",
            "-Xptxas",
            "-v",
            "-Xptxas",
            "-warn-spills",
        ])
        .arg("-I")
        .arg(manifest.join("kernels"))
        .arg("-I")
        .arg(out_dir)
        .arg("-o")
        .arg(&fatbin)
        .arg(unity)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", nvcc.display()))?;
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    let log_path = out_dir.join(format!("{name}.nvcc.log"));
    let _ = fs::write(&log_path, &log);
    if !output.status.success() {
        let first = log
            .lines()
            .find(|l| l.contains("error"))
            .unwrap_or("(no error line)");
        return Err(format!(
            "{} exited with {}: {first} (full log: {})",
            nvcc.display(),
            output.status,
            log_path.display()
        ));
    }
    // Compiler warnings, register spills included (-warn-spills), surface in cargo's output.
    for line in log.lines().filter(|l| l.contains("warning")) {
        println!("cargo::warning=nvcc: {line}");
    }
    Ok(fatbin)
}

/// The `code=` targets of nvcc's `-gencode` flags (`arch=compute_90,code=[sm_90,compute_90]`
/// gives `sm_90`, `compute_90`), in order, each once.
fn code_targets(gencode: &[String]) -> Vec<String> {
    let mut targets: Vec<String> = Vec::new();
    for flag in gencode {
        let Some((_, code)) = flag.split_once("code=") else {
            continue;
        };
        for target in code
            .trim_matches(|c| c == '[' || c == ']' || c == '"')
            .split(',')
        {
            let target = target.trim_matches(|c| c == '[' || c == ']' || c == '"');
            if !target.is_empty() && !targets.iter().any(|t| t == target) {
                targets.push(target.to_string());
            }
        }
    }
    targets
}

/// `compact_layout.cuh`: the row size and an X-macro over the sections of
/// `src/encode/compact_layout.rs`, so the kernel unrolls them with compile-time constants.
fn compact_layout_header() -> String {
    use compact_layout::{ROW_BYTES, SECTIONS};
    let sections: String = SECTIONS
        .iter()
        .map(|s| {
            format!(
                "  X({}, {}, {}, {}) \\\n",
                s.packing.name(),
                s.first,
                s.dims,
                s.offset
            )
        })
        .collect();
    format!(
        "// Generated by build.rs from src/encode/compact_layout.rs (the layout is defined there).\n\
         #pragma once\n\
         #define COMPACT_ROW_BYTES {ROW_BYTES}\n\
         // X(packing, first dim, dims, byte offset) for every section, in dim order.\n\
         #define COMPACT_SECTIONS(X) \\\n{sections}\n"
    )
}

/// `blobnet_layout.cuh`: every constant of `src/net/cuda/layout.rs` as a `constexpr int` in
/// namespace `blob`.
fn blobnet_layout_header() -> String {
    let constants: String = layout::KERNEL_CONSTANTS
        .iter()
        .map(|(name, value)| format!("constexpr int {name} = {value};\n"))
        .collect();
    format!(
        "// Generated by build.rs from src/net/cuda/layout.rs (the layout is defined there).\n\
         #pragma once\n\
         namespace blob {{\n{constants}}}  // namespace blob\n"
    )
}
