//! Build script. The CUDA kernels (kernels/*.cu) will be compiled here by nvcc; until they
//! exist there is nothing to build, and cargo need not rerun this script on source edits.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
}
