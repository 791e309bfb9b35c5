//! The provenance a run writes into every shard's metadata: part of the shard format (see
//! [`super::shard`]). Every value is a string in the file.
//!
//! | key | value |
//! |---|---|
//! | `engine_version` | the engine's crate version |
//! | `weights_sha256` | lower-case hex SHA-256 of the weights file (of a fresh net's bytes without `--weights`) |
//! | `encoder` | the state encoder, `v1` or `v2` |
//! | `rules` | `rounds players=P cards=C dealer=random trump=random`, or `full_game players=P start_cards=C` |
//! | `search` | `worlds=… sims=… leaf_values=… c_puct=… fpu=… noise=… leaves_per_gather=…` |
//! | `units` | rounds (round mode) or games (full-game mode) the run was asked for |
//! | `seed` | the run seed: with a row's `unit`, it names the random stream the row was played from |
//! | `device` | the backend that ran the network (`cpu`, `cuda`, …) |
//! | `host` | the machine's hostname |
//!
//! The writer adds, per file: `format_version`, `first_shard` (the number of the run's first
//! shard: the shards of one run share it) and `rows`.

use std::collections::BTreeMap;

use super::SelfPlayConfig;

/// What a run records about itself in each of its shards ([`super::ShardWriter`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardMetadata {
    pub engine_version: String,
    pub weights_sha256: String,
    pub encoder: String,
    pub rules: String,
    pub search: String,
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
        "search",
        "seed",
        "units",
        "weights_sha256",
    ];

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
        let s = &config.search;
        let search = format!(
            "worlds={} sims={} leaf_values={:?} c_puct={} fpu={:?} noise={:?} leaves_per_gather={}",
            s.worlds,
            s.sims_per_world,
            s.leaf_values,
            s.c_puct,
            s.fpu,
            s.root_noise,
            s.leaves_per_gather,
        );
        ShardMetadata {
            engine_version: env!("CARGO_PKG_VERSION").to_string(),
            weights_sha256: weights_sha256.to_string(),
            encoder: format!("{:?}", s.encoder).to_lowercase(),
            rules,
            search,
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
            search,
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
            ("search", search.clone()),
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
        }
    }

    /// The values `engine selfplay` wrote before this type existed (read off the shards of
    /// `--players 4 --cards 3 --rounds 6 --preset light --seed 11`, and of a full-game run).
    #[test]
    fn the_values_are_those_selfplay_always_wrote() {
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
            (
                "search",
                "worlds=2 sims=20 leaf_values=All c_puct=1.5 fpu=Reduction(0.2) \
                 noise=Some(RootNoise { alpha: 0.3, epsilon: 0.25 }) leaves_per_gather=4",
            ),
            ("seed", "11"),
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
