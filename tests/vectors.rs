//! Parity with BlobMaster over a directory of recorded vectors: `$ENGINE_VECTORS`
//! (default `tests/vectors`), the same checks `engine verify` runs.

use engine::verify::verify_dir;

#[test]
fn every_recorded_vector_matches() {
    let report = verify_dir(&engine::vectors::dir()).expect("vector files load");
    for f in &report.failures {
        eprintln!("{f}");
    }
    assert_eq!(report.failed, 0, "{:?}", report.categories);
    for name in [
        "turns",
        "states",
        "legal masks",
        "encodings",
        "round results",
        "network",
        "exact encodings",
    ] {
        let c = report
            .categories
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} checks ran"));
        assert!(c.passed > 0 && c.failed == 0, "{c:?}");
    }
}
