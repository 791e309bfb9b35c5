//! The provenance a run writes into every shard's metadata: part of the shard format (see
//! [`super::shard`]). Every value is a string in the file.
//!
//! | key | value |
//! |---|---|
//! | `engine_version` | the engine's crate version |
//! | `weights_sha256` | lower-case hex SHA-256 of the weights file (of a fresh net's bytes without `--weights`) |
//! | `encoder` | the state encoder, `v1` or `v2` |
//! | `rules` | `rounds players=P cards=C dealer=random trump=random`, or `full_game players=P start_cards=C` |
//! | `settings` | the search settings as one line of JSON, itself a settings file (see [`crate::settings`]) |
//! | `units` | rounds (round mode) or games (full-game mode) the run was asked for |
//! | `seed` | the run seed: with a row's `unit`, it names the random stream the row was played from |
//! | `device` | the backend that ran the network (`cpu`, `cuda`, …) |
//! | `host` | the machine's hostname |
//!
//! The writer adds, per file: `format_version`, `first_shard` (the number of the run's first
//! shard: the shards of one run share it) and `rows`.

use std::collections::BTreeMap;

use super::SelfPlayConfig;
use crate::settings::Settings;

/// What a run records about itself in each of its shards ([`super::ShardWriter`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMetadata {
    pub engine_version: String,
    pub weights_sha256: String,
    pub encoder: String,
    pub rules: String,
    pub settings: String,
    pub units: u64,
    pub seed: u64,
    pub device: String,
    pub host: String,
}

impl ShardMetadata {
    /// The keys [`ShardMetadata::to_map`] gives, sorted as a shard's header lists them.
    pub const KEYS: [&'static str; 9] = [
        "device",
        "encoder",
        "engine_version",
        "host",
        "rules",
        "seed",
        "settings",
        "units",
        "weights_sha256",
    ];

    /// The keys that decide a run's rows: a rerun with the same values continues the run
    /// (see [`super::resume`]); the engine version, device, host and unit count may differ.
    pub const RUN_KEYS: [&'static str; 5] =
        ["encoder", "rules", "seed", "settings", "weights_sha256"];

    /// True when `metadata` (a shard's) is of a run with this one's identity ([`Self::RUN_KEYS`]).
    pub fn is_same_run(&self, metadata: &BTreeMap<String, String>) -> bool {
        let own = self.to_map();
        Self::RUN_KEYS
            .iter()
            .all(|&key| metadata.get(key).is_some_and(|v| Some(v) == own.get(key)))
    }

    /// The keys the shard writer adds to every file.
    pub const FILE_KEYS: [&'static str; 3] = ["first_shard", "format_version", "rows"];

    /// The provenance of a run of `config` with the weights of SHA-256 `weights_sha256` on
    /// the backend named `device`, on this host.
    pub fn new(config: &SelfPlayConfig, weights_sha256: &str, device: &str) -> ShardMetadata {
        let rules = match config.start_cards {
            None => format!(
                "rounds players={} cards={} dealer=random trump=random",
                config.players, config.cards
            ),
            Some(c) => format!("full_game players={} start_cards={c}", config.players),
        };
        let settings =
            Settings::of_search(&config.search, &config.temperature, config.cache_entries);
        ShardMetadata {
            engine_version: env!("CARGO_PKG_VERSION").to_string(),
            weights_sha256: weights_sha256.to_string(),
            encoder: settings.search.encoder.name().to_string(),
            rules,
            settings: settings.to_json(),
            units: config.units,
            seed: config.seed,
            device: device.to_string(),
            host: super::hostname(),
        }
    }

    /// The metadata entries, keyed by [`ShardMetadata::KEYS`].
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let ShardMetadata {
            engine_version,
            weights_sha256,
            encoder,
            rules,
            settings,
            units,
            seed,
            device,
            host,
        } = self;
        [
            ("engine_version", engine_version.clone()),
            ("weights_sha256", weights_sha256.clone()),
            ("encoder", encoder.clone()),
            ("rules", rules.clone()),
            ("settings", settings.clone()),
            ("units", units.to_string()),
            ("seed", seed.to_string()),
            ("device", device.clone()),
            ("host", host.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{RootNoise, SearchConfig};

    fn config(start_cards: Option<u8>) -> SelfPlayConfig {
        SelfPlayConfig {
            players: 4,
            cards: 3,
            start_cards,
            units: 6,
            search: SearchConfig {
                root_noise: Some(RootNoise {
                    alpha: 0.3,
                    epsilon: 0.25,
                }),
                ..SearchConfig::light()
            },
            workers: 2,
            games_per_worker: 4,
            seed: 11,
            cache_entries: 1 << 12,
            temperature: Default::default(),
        }
    }

    /// The values of `engine selfplay --players 4 --cards 3 --rounds 6 --preset light --seed 11`
    /// (`--set search.cache_entries=4096`), and of a full-game run.
    #[test]
    fn the_values_name_the_run() {
        let meta = ShardMetadata::new(&config(None), "ab12", "cpu").to_map();
        let expected = [
            ("device", "cpu"),
            ("encoder", "v2"),
            ("engine_version", env!("CARGO_PKG_VERSION")),
            ("host", &crate::selfplay::hostname()),
            (
                "rules",
                "rounds players=4 cards=3 dealer=random trump=random",
            ),
            ("seed", "11"),
            (
                "settings",
                r#"{"search":{"dets":2,"sims":20,"c_puct":1.5,"fpu":{"reduction":0.2},"leaf_values":"all","leaves_per_gather":4,"encoder":"v2","cache_entries":4096,"beliefs":"uniform","belief_temperature":1.0,"belief_floor":0.05,"belief_oversampling":8,"belief_rows":160},"selfplay":{"dirichlet_alpha":0.3,"dirichlet_epsilon":0.25,"temperature":[[0,1.0],[10,0.5],[20,0.1]]}}"#,
            ),
            ("units", "6"),
            ("weights_sha256", "ab12"),
        ];
        let expected: BTreeMap<String, String> = expected
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(meta, expected);
        let full = ShardMetadata::new(&config(Some(2)), "ab12", "cuda");
        assert_eq!(full.rules, "full_game players=4 start_cards=2");
        assert_eq!(full.device, "cuda");
    }

    #[test]
    fn a_run_is_the_same_whatever_its_device_host_version_or_unit_count() {
        let run = ShardMetadata::new(&config(None), "ab12", "cpu");
        let other_machine = ShardMetadata {
            device: "cuda".into(),
            host: "elsewhere".into(),
            engine_version: "9.9.9".into(),
            units: 1000,
            ..run.clone()
        };
        assert!(run.is_same_run(&other_machine.to_map()));
        for key in ShardMetadata::RUN_KEYS {
            let mut changed = run.to_map();
            changed.insert(key.into(), "something else".into());
            assert!(!run.is_same_run(&changed), "{key}");
            changed.remove(key);
            assert!(!run.is_same_run(&changed), "{key} missing");
        }
    }

    #[test]
    fn the_keys_are_the_documented_ones() {
        let meta = ShardMetadata::new(&config(None), "ab12", "cpu").to_map();
        assert!(meta.keys().eq(ShardMetadata::KEYS.iter()), "{meta:?}");
        // The module documentation's table (and the line after it) names every key.
        let doc: String = include_str!("metadata.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//!"))
            .collect();
        for key in ShardMetadata::KEYS.iter().chain(&ShardMetadata::FILE_KEYS) {
            assert!(doc.contains(&format!("`{key}`")), "{key} undocumented");
        }
    }
}
