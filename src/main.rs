fn main() {
    let r = engine::verify::verify_dir(std::path::Path::new("tests/vectors")).unwrap();
    println!(
        "{:?} {} {} {:?}",
        r.categories, r.passed, r.failed, r.failures
    );
}
