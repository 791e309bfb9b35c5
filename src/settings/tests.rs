use super::*;

/// A file of `text` in the system's temporary directory, removed on drop.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn named(name: &str, text: &str) -> TempFile {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("engine-settings-{}-{n}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A settings file of `text`.
fn file(text: &str) -> TempFile {
    TempFile::named("settings.toml", text)
}

fn set(text: &str) -> Override {
    text.parse().unwrap()
}

#[test]
fn the_template_is_the_defaults_and_they_are_the_searchs() {
    let f = file(TEMPLATE);
    let settings = Settings::load(Some(&f.0), &[]).unwrap();
    assert_eq!(settings, Settings::default());
    assert_eq!(settings.search_config(), SearchConfig::medium());
    assert_eq!(
        settings.self_play_search_config(),
        SearchConfig::medium().self_play()
    );
    assert_eq!(
        settings.selfplay.temperature,
        TemperatureSchedule::default()
    );
}

#[test]
fn the_settings_page_shows_the_template() {
    let page = include_str!("../../docs/settings.md");
    assert!(
        page.contains(TEMPLATE),
        "docs/settings.md must show TEMPLATE as it is"
    );
}

#[test]
fn later_layers_win_and_dets_or_sims_override_the_preset_wherever_given() {
    let f = file("[search]\npreset = \"heavy\"\nsims = 40\nc_puct = 2\n");
    let from_file = Settings::load(Some(&f.0), &[]).unwrap().search_config();
    assert_eq!((from_file.worlds, from_file.sims_per_world), (5, 40));
    assert_eq!(from_file.c_puct, 2.0);

    let overrides = [
        set("search.c_puct=3"),
        Override::flag("--dets", "search.dets", 7),
        Override::flag("--preset", "search.preset", "light"),
    ];
    let config = Settings::load(Some(&f.0), &overrides)
        .unwrap()
        .search_config();
    // The flag's preset, the file's sims, the flag's dets, the --set's c_puct.
    assert_eq!((config.worlds, config.sims_per_world), (7, 40));
    assert_eq!(config.c_puct, 3.0);

    let noise_off = Settings::load(None, &[set("selfplay.dirichlet_epsilon=0")]).unwrap();
    assert_eq!(noise_off.self_play_search_config().root_noise, None);
    let absolute = Settings::load(None, &[set("search.fpu={ absolute = -1 }")]).unwrap();
    assert_eq!(absolute.search_config().fpu, Fpu::Absolute(-1.0));
    let schedule = set("selfplay.temperature=[[0, 1], [4, 0]]");
    let greedy_late = Settings::load(None, &[schedule])
        .unwrap()
        .selfplay
        .temperature;
    assert_eq!((greedy_late.at(3), greedy_late.at(4)), (1.0, 0.0));
}

/// A layer over loaded settings: its file's keys win one by one (a value whole), then its
/// overrides, which may set a key the layer below set too.
#[test]
fn a_layer_wins_over_the_settings_below_it() {
    let shared = Settings::load(
        None,
        &[
            set("search.c_puct=3"),
            set("search.sims=9"),
            set("search.fpu={ absolute = -1 }"),
        ],
    )
    .unwrap();
    let f = file("[search]\npreset = \"light\"\nfpu = { reduction = 0.5 }\n");
    let side = shared
        .layered(Some(&f.0), &[set("search.c_puct=2")])
        .unwrap();
    let config = side.search_config();
    // The layer's preset with the shared sims; its fpu whole; its c_puct over the shared one.
    assert_eq!((config.worlds, config.sims_per_world), (2, 9));
    assert_eq!(config.fpu, Fpu::Reduction(0.5));
    assert_eq!(config.c_puct, 2.0);
    assert_eq!(shared.layered(None, &[]).unwrap(), shared);
    let e = shared
        .layered(None, &[set("search.c_puct=-1")])
        .unwrap_err()
        .to_string();
    assert_eq!(e, "search.c_puct must be finite and ≥ 0, not -1");
}

#[test]
fn one_key_given_twice_is_refused_naming_both() {
    let overrides = [
        Override::flag("--sims", "search.sims", 10),
        set("search.sims=20"),
    ];
    let e = Settings::load(None, &overrides).unwrap_err().to_string();
    assert_eq!(
        e,
        "search.sims is given twice: by --sims 10 and by --set search.sims=20"
    );
}

#[test]
fn errors_name_the_file_flag_or_key_at_fault() {
    let f = TempFile::named("bad.json", "{\"search\": {\"sims\": \"many\"}}");
    let e = Settings::load(Some(&f.0), &[]).unwrap_err().to_string();
    assert!(e.contains("bad.json") && e.contains("column"), "{e}");

    let f = file("[search]\ncpuct = 2\n");
    let e = Settings::load(Some(&f.0), &[]).unwrap_err().to_string();
    assert!(
        e.contains(&f.0.display().to_string()) && e.contains("cpuct"),
        "{e}"
    );
    assert!(e.contains("line 2"), "{e}");

    let f = file("[search]\nc_puct = \"high\"\n");
    let e = Settings::load(Some(&f.0), &[]).unwrap_err().to_string();
    assert!(e.contains("c_puct") && e.contains("line 2"), "{e}");

    let missing = std::env::temp_dir().join("engine-settings-no-such-file.toml");
    let e = Settings::load(Some(&missing), &[]).unwrap_err();
    assert!(matches!(e, SettingsError::Read { .. }), "{e}");
    assert!(e.to_string().contains("no-such-file"), "{e}");

    let cases = [
        ("search.cpuct=2", "cpuct"),
        ("search.c_puct=high", "f32"),
        ("selfplay.temperature=[[1, 1.0]]", "move 0"),
        ("search.c_puct.x=1", "expected f32 in `search.c_puct`"),
    ];
    for (text, needle) in cases {
        let e = Settings::load(None, &[set(text)]).unwrap_err().to_string();
        assert!(e.starts_with(&format!("--set {text}: ")), "{e}");
        assert!(e.contains(needle) && !e.contains('\n'), "{text}: {e}");
    }

    let ranges = [
        ("search.dets=0", "search.dets must be in 1..=64, not 0"),
        (
            "search.sims=70000",
            "search.sims must be in 1..=65534, not 70000",
        ),
        (
            "search.c_puct=-1",
            "search.c_puct must be finite and ≥ 0, not -1",
        ),
        (
            "search.fpu={ reduction = nan }",
            "search.fpu must be finite, not NaN",
        ),
        (
            "search.leaves_per_gather=0",
            "search.leaves_per_gather must be in 1..=64, not 0",
        ),
        (
            "search.cache_entries=99999999",
            "search.cache_entries must be at most 16777216, not 99999999",
        ),
        (
            "selfplay.dirichlet_alpha=0",
            "selfplay.dirichlet_alpha must be a positive number, not 0",
        ),
        (
            "selfplay.dirichlet_epsilon=1.5",
            "selfplay.dirichlet_epsilon must be in [0, 1], not 1.5",
        ),
    ];
    for (text, expected) in ranges {
        let e = Settings::load(None, &[set(text)]).unwrap_err().to_string();
        assert_eq!(e, expected);
    }
}

#[test]
fn an_override_is_a_dotted_key_and_a_toml_value_or_a_bare_word() {
    let o = set("search.leaf_values = mover");
    assert_eq!(o.key, "search.leaf_values");
    assert_eq!(o.value, toml::Value::String("mover".into()));
    assert_eq!(set("search.sims=8").value, toml::Value::Integer(8));
    assert_eq!(
        set("search.encoder=\"v1\"").value,
        toml::Value::String("v1".into())
    );
    assert!(set("search.fpu={ absolute = -1.0 }").value.is_table());
    for bad in ["search.sims", "=3", "search..sims=3", "search sims=3"] {
        assert!(bad.parse::<Override>().is_err(), "{bad}");
    }
}

#[test]
fn what_a_run_records_reads_back_as_the_same_settings() {
    let settings = Settings::load(
        None,
        &[
            set("search.preset=light"),
            set("search.fpu={ absolute = -0.5 }"),
            set("selfplay.dirichlet_alpha=0.1"),
            set("selfplay.temperature=[[0, 1.0], [6, 0.25]]"),
            set("search.cache_entries=4096"),
        ],
    )
    .unwrap();
    let config = settings.self_play_search_config();
    let recorded = Settings::of_search(&config, &settings.selfplay.temperature, 4096);
    let json = recorded.to_json();
    assert!(json.contains("\"dirichlet_alpha\":0.1,"), "{json}");
    assert!(json.contains("\"fpu\":{\"absolute\":-0.5}"), "{json}");
    let json_file = TempFile::named("recorded.json", &json);
    let from_json = Settings::load(Some(&json_file.0), &[]).unwrap();
    assert_eq!(from_json, recorded);
    assert_eq!(from_json.self_play_search_config(), config);

    let toml = recorded.to_toml();
    assert!(toml.contains("dirichlet_alpha = 0.1\n"), "{toml}");
    let from_toml = Settings::load(Some(&file(&toml).0), &[]).unwrap();
    assert_eq!(from_toml, recorded);
}
