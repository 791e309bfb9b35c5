//! The search settings a user chooses, in layers, each winning over the one before: built-in
//! defaults, a TOML file (`--config FILE`), then `--set KEY=VALUE` and the command's own flags
//! (one key given both ways is refused). The file's keys are [`Settings`]' fields; [`TEMPLATE`]
//! is the documented file of the defaults. A run records what it searched with as JSON
//! ([`Settings::to_json`]; shard metadata `settings`), which `--config` reads back from a
//! `.json` file.

use crate::encode::EncoderVersion;
use crate::search::inference::{MAX_BELIEF_ROWS, MAX_OVERSAMPLING};
use crate::search::{
    Beliefs, Fpu, LeafValues, PolicyBeliefs, Preset, RootNoise, SearchConfig, TemperatureSchedule,
    MAX_SIMS_PER_WORLD, MAX_WORLDS,
};
use crate::selfplay::{DEFAULT_GAMES_PER_WORKER, MAX_GAMES_PER_WORKER, MAX_WORKERS};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use thiserror::Error;

/// The settings file: every key optional, a missing one takes its default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub search: SearchSettings,
    pub selfplay: SelfplaySettings,
}

/// `[search]`: how selfplay, arena and analyze search (for analyze, a query's defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchSettings {
    /// The budget by name (medium when not given); `dets` and `sims` override its parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preset: Option<Preset>,
    /// Determinized worlds per decision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dets: Option<u32>,
    /// Simulations per world.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sims: Option<u32>,
    pub c_puct: f32,
    pub fpu: Fpu,
    pub leaf_values: LeafValues,
    pub leaves_per_gather: u32,
    pub encoder: EncoderVersion,
    /// Entries of each worker's evaluation cache (selfplay; arena: per net). Analysis sizes a
    /// cache for each query.
    pub cache_entries: usize,
    /// How worlds are sampled: uniformly, or weighed by the other seats' past decisions.
    pub beliefs: Beliefs,
    /// Policy beliefs: the temperature of the policy the observed actions are weighed under.
    pub belief_temperature: f32,
    /// Policy beliefs: the least factor one observed decision gives a world.
    pub belief_floor: f32,
    /// Policy beliefs: candidate worlds weighed per searched world.
    pub belief_oversampling: u32,
    /// Policy beliefs: most extra network rows per decision.
    pub belief_rows: u32,
}

/// `[selfplay]`: what only self-play uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SelfplaySettings {
    /// Worker threads (every core when not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Games each worker plays at once (64 when not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub games_per_worker: Option<usize>,
    /// Dirichlet noise at each world's root: concentration α.
    pub dirichlet_alpha: f32,
    /// Dirichlet noise at each world's root: weight ε (0 turns the noise off).
    pub dirichlet_epsilon: f32,
    /// The move temperature by searched decisions of the round before.
    pub temperature: TemperatureSchedule,
}

/// Largest `search.cache_entries`: about 80 bytes each, per worker.
pub const MAX_CACHE_ENTRIES: usize = 1 << 24;
/// Largest `search.leaves_per_gather`: a gather of 64 worlds × 64 leaves × 8 seats is 32,768
/// rows.
pub const MAX_LEAVES_PER_GATHER: u32 = 64;

/// The settings file with every default, commented: what `docs/settings.md` shows.
pub const TEMPLATE: &str = r#"# engine settings (selfplay, arena, analyze: --config FILE). Every key is optional.
[search]
# preset = "medium"       # light (2 worlds × 20 simulations), medium (3 × 30), heavy (5 × 50)
# dets = 3                # worlds per decision, 1..=64 (overrides the preset's)
# sims = 30               # simulations per world, 1..=65534 (overrides the preset's)
c_puct = 1.5              # PUCT's exploration constant, ≥ 0
fpu = { reduction = 0.2 } # an unvisited child's value: the parent's minus 0.2; or { absolute = -1.0 }
leaf_values = "all"       # "all": a row per seat at each leaf; "mover": the mover's row only
leaves_per_gather = 4     # leaves a world sends to the network at once, 1..=64
encoder = "v2"            # the state layout the weights expect: "v2" or "v1"
cache_entries = 65536     # evaluation cache per worker (and net), 0..=16777216; 0 turns it off
beliefs = "uniform"       # worlds: "uniform" over the deals the seat's information allows, or
                          # "policy": weighed by the other seats' bids and plays under the net
belief_temperature = 1.0  # policy beliefs: a decision's factor is max(q, floor), T > 0, where
                          # q = p^(1/T) renormalised over the legal actions
belief_floor = 0.05       # policy beliefs: that floor, in (0, 1]
belief_oversampling = 8   # policy beliefs: candidate worlds weighed per world, 1..=64
belief_rows = 160         # policy beliefs: most extra network rows per decision, 0..=65536

[selfplay]
# workers = 8             # worker threads, 1..=1024 (default: every core)
# games_per_worker = 64   # games each worker plays at once, 1..=4096
dirichlet_alpha = 0.3     # root noise: Dirichlet concentration, > 0
dirichlet_epsilon = 0.25  # root noise: weight in [0, 1]; 0 turns it off
# temperature from the n-th searched decision of a round on: [[n, temperature], ...], from 0
temperature = [[0, 1.0], [10, 0.5], [20, 0.1]]
"#;

impl Default for SearchSettings {
    fn default() -> SearchSettings {
        let base = SearchConfig::default();
        SearchSettings {
            preset: None,
            dets: None,
            sims: None,
            c_puct: base.c_puct,
            fpu: base.fpu,
            leaf_values: base.leaf_values,
            leaves_per_gather: base.leaves_per_gather,
            encoder: base.encoder,
            cache_entries: 1 << 16,
            beliefs: base.beliefs,
            belief_temperature: base.policy_beliefs.temperature,
            belief_floor: base.policy_beliefs.floor,
            belief_oversampling: base.policy_beliefs.oversampling,
            belief_rows: base.policy_beliefs.max_rows,
        }
    }
}

impl Default for SelfplaySettings {
    fn default() -> SelfplaySettings {
        let noise = RootNoise::default();
        SelfplaySettings {
            workers: None,
            games_per_worker: None,
            dirichlet_alpha: noise.alpha,
            dirichlet_epsilon: noise.epsilon,
            temperature: TemperatureSchedule::default(),
        }
    }
}

/// Settings that cannot be read or used; each names the file, flag or key at fault.
#[derive(Debug, Error)]
pub enum SettingsError {
    #[error("cannot read the settings file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the settings file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{origin}: {message}")]
    Override { origin: String, message: String },
    #[error("{key} is given twice: by {first} and by {second}")]
    Twice {
        key: String,
        first: String,
        second: String,
    },
    #[error("{key} {message}")]
    Invalid { key: &'static str, message: String },
}

/// One setting given on the command line: a dotted key of the file (`search.c_puct`) and a
/// TOML value (`2`, `"mover"`, `{ absolute = -1.0 }`; a bare word reads as a string), with the
/// flag that gave it, for errors.
#[derive(Clone, Debug, PartialEq)]
pub struct Override {
    pub key: String,
    pub value: toml::Value,
    pub origin: String,
}

impl Override {
    /// The setting a command's own flag gives (`--sims 10` is `search.sims = 10`).
    pub fn flag(flag: &str, key: &str, value: impl Into<toml::Value>) -> Override {
        let value = value.into();
        let shown = match &value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Override {
            origin: format!("{flag} {shown}"),
            key: key.to_string(),
            value,
        }
    }
}

impl FromStr for Override {
    type Err = String;

    /// `KEY=VALUE`, as `--set` takes it.
    fn from_str(text: &str) -> Result<Override, String> {
        let (key, value) = text
            .split_once('=')
            .ok_or_else(|| format!("expected KEY=VALUE (e.g. search.c_puct=2), got {text:?}"))?;
        let key = key.trim();
        let well_formed = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        if !key.split('.').all(well_formed) {
            return Err(format!(
                "{key:?} is not a settings key: dotted names such as search.c_puct"
            ));
        }
        let value = value.trim();
        let value = toml::from_str::<toml::Table>(&format!("value = {value}"))
            .ok()
            .and_then(|mut t| t.remove("value"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        Ok(Override {
            key: key.to_string(),
            value,
            origin: format!("--set {text}"),
        })
    }
}

impl Settings {
    /// The defaults, then `file` when given, then `overrides` (which must name distinct keys),
    /// checked.
    pub fn load(file: Option<&Path>, overrides: &[Override]) -> Result<Settings, SettingsError> {
        Settings::load_over(toml::Table::new(), file, overrides)
    }

    /// These settings under one more layer, each winning over them: `file`, then `overrides`
    /// (which must name distinct keys), checked. An arena side's own settings over the shared
    /// ones.
    pub fn layered(
        &self,
        file: Option<&Path>,
        overrides: &[Override],
    ) -> Result<Settings, SettingsError> {
        let base = toml::Table::try_from(self).expect("settings serialize as TOML");
        Settings::load_over(base, file, overrides)
    }

    /// `base`, then `file`'s keys, then `overrides`, checked.
    fn load_over(
        mut table: toml::Table,
        file: Option<&Path>,
        overrides: &[Override],
    ) -> Result<Settings, SettingsError> {
        if let Some(path) = file {
            merge(&mut table, read_file(path)?);
        }
        for (i, o) in overrides.iter().enumerate() {
            if let Some(first) = overrides[..i].iter().find(|f| f.key == o.key) {
                return Err(SettingsError::Twice {
                    key: o.key.clone(),
                    first: first.origin.clone(),
                    second: o.origin.clone(),
                });
            }
            // Alone first, so that an error names the override that caused it.
            let mut alone = toml::Table::new();
            let message = |e: &dyn std::fmt::Display| SettingsError::Override {
                origin: o.origin.clone(),
                message: one_line(e),
            };
            insert(&mut alone, &o.key, o.value.clone()).map_err(|e| message(&e))?;
            from_table(alone).map_err(|e| message(&e))?;
            insert(&mut table, &o.key, o.value.clone()).map_err(|e| message(&e))?;
        }
        let settings = from_table(table).map_err(|e| SettingsError::Override {
            origin: "the settings with the command line's".to_string(),
            message: one_line(&e),
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what the types cannot: ranges.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |key, message: String| Err(SettingsError::Invalid { key, message });
        let s = &self.search;
        if let Some(dets) = s.dets.filter(|d| !(1..=MAX_WORLDS).contains(d)) {
            return invalid(
                "search.dets",
                format!("must be in 1..={MAX_WORLDS}, not {dets}"),
            );
        }
        if let Some(sims) = s.sims.filter(|n| !(1..=MAX_SIMS_PER_WORLD).contains(n)) {
            let message = format!("must be in 1..={MAX_SIMS_PER_WORLD}, not {sims}");
            return invalid("search.sims", message);
        }
        if !(s.c_puct.is_finite() && s.c_puct >= 0.0) {
            return invalid(
                "search.c_puct",
                format!("must be finite and ≥ 0, not {}", s.c_puct),
            );
        }
        let (Fpu::Reduction(fpu) | Fpu::Absolute(fpu)) = s.fpu;
        if !fpu.is_finite() {
            return invalid("search.fpu", format!("must be finite, not {fpu}"));
        }
        if !(1..=MAX_LEAVES_PER_GATHER).contains(&s.leaves_per_gather) {
            let message = format!(
                "must be in 1..={MAX_LEAVES_PER_GATHER}, not {}",
                s.leaves_per_gather
            );
            return invalid("search.leaves_per_gather", message);
        }
        if s.cache_entries > MAX_CACHE_ENTRIES {
            let message = format!(
                "must be at most {MAX_CACHE_ENTRIES}, not {}",
                s.cache_entries
            );
            return invalid("search.cache_entries", message);
        }
        if !(s.belief_temperature.is_finite() && s.belief_temperature > 0.0) {
            let message = format!("must be a positive number, not {}", s.belief_temperature);
            return invalid("search.belief_temperature", message);
        }
        if !(s.belief_floor > 0.0 && s.belief_floor <= 1.0) {
            let message = format!("must be in (0, 1], not {}", s.belief_floor);
            return invalid("search.belief_floor", message);
        }
        if !(1..=MAX_OVERSAMPLING).contains(&s.belief_oversampling) {
            let message = format!(
                "must be in 1..={MAX_OVERSAMPLING}, not {}",
                s.belief_oversampling
            );
            return invalid("search.belief_oversampling", message);
        }
        if s.belief_rows > MAX_BELIEF_ROWS {
            let message = format!("must be at most {MAX_BELIEF_ROWS}, not {}", s.belief_rows);
            return invalid("search.belief_rows", message);
        }
        let p = &self.selfplay;
        if let Some(w) = p.workers.filter(|w| !(1..=MAX_WORKERS).contains(w)) {
            return invalid(
                "selfplay.workers",
                format!("must be in 1..={MAX_WORKERS}, not {w}"),
            );
        }
        let games = p.games_per_worker;
        if let Some(g) = games.filter(|g| !(1..=MAX_GAMES_PER_WORKER).contains(g)) {
            let message = format!("must be in 1..={MAX_GAMES_PER_WORKER}, not {g}");
            return invalid("selfplay.games_per_worker", message);
        }
        if !(p.dirichlet_alpha.is_finite() && p.dirichlet_alpha > 0.0) {
            let message = format!("must be a positive number, not {}", p.dirichlet_alpha);
            return invalid("selfplay.dirichlet_alpha", message);
        }
        if !(0.0..=1.0).contains(&p.dirichlet_epsilon) {
            let message = format!("must be in [0, 1], not {}", p.dirichlet_epsilon);
            return invalid("selfplay.dirichlet_epsilon", message);
        }
        Ok(())
    }

    /// The search of arena and analysis: `[search]`, no root noise.
    pub fn search_config(&self) -> SearchConfig {
        let s = &self.search;
        let base = s.preset.unwrap_or_default().config();
        SearchConfig {
            worlds: s.dets.unwrap_or(base.worlds),
            sims_per_world: s.sims.unwrap_or(base.sims_per_world),
            c_puct: s.c_puct,
            fpu: s.fpu,
            leaf_values: s.leaf_values,
            root_noise: None,
            leaves_per_gather: s.leaves_per_gather,
            encoder: s.encoder,
            beliefs: s.beliefs,
            policy_beliefs: PolicyBeliefs {
                temperature: s.belief_temperature,
                floor: s.belief_floor,
                oversampling: s.belief_oversampling,
                max_rows: s.belief_rows,
            },
        }
    }

    /// Self-play's worker threads: `selfplay.workers`, or one per core.
    pub fn workers(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.selfplay.workers.unwrap_or(cores.min(MAX_WORKERS))
    }

    /// Games each self-play worker plays at once.
    pub fn games_per_worker(&self) -> usize {
        self.selfplay
            .games_per_worker
            .unwrap_or(DEFAULT_GAMES_PER_WORKER)
    }

    /// Self-play's search: [`Settings::search_config`] with `[selfplay]`'s root noise.
    pub fn self_play_search_config(&self) -> SearchConfig {
        let p = &self.selfplay;
        SearchConfig {
            root_noise: (p.dirichlet_epsilon > 0.0).then_some(RootNoise {
                alpha: p.dirichlet_alpha,
                epsilon: p.dirichlet_epsilon,
            }),
            ..self.search_config()
        }
    }

    /// The settings of a search `config` (preset resolved into `dets` and `sims`), self-play's
    /// `temperature` and `cache_entries`: what a run records. The worker layout is left out: it
    /// does not change the games, and shards do not depend on it.
    pub fn of_search(
        config: &SearchConfig,
        temperature: &TemperatureSchedule,
        cache_entries: usize,
    ) -> Settings {
        let noise = config.root_noise;
        Settings {
            search: SearchSettings {
                preset: None,
                dets: Some(config.worlds),
                sims: Some(config.sims_per_world),
                c_puct: config.c_puct,
                fpu: config.fpu,
                leaf_values: config.leaf_values,
                leaves_per_gather: config.leaves_per_gather,
                encoder: config.encoder,
                cache_entries,
                beliefs: config.beliefs,
                belief_temperature: config.policy_beliefs.temperature,
                belief_floor: config.policy_beliefs.floor,
                belief_oversampling: config.policy_beliefs.oversampling,
                belief_rows: config.policy_beliefs.max_rows,
            },
            selfplay: SelfplaySettings {
                workers: None,
                games_per_worker: None,
                dirichlet_alpha: noise.map_or(RootNoise::default().alpha, |n| n.alpha),
                dirichlet_epsilon: noise.map_or(0.0, |n| n.epsilon),
                temperature: temperature.clone(),
            },
        }
    }

    /// One line of JSON (floats at their shortest: `0.1`, not `0.10000000149011612`).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("settings serialize")
    }

    /// A settings file of these values.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("settings serialize as TOML")
    }

    /// Writes [`Settings::to_toml`] to `path`, atomically.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::fsio::write_atomic(path, self.to_toml().as_bytes())
    }
}

/// A settings file: TOML, or JSON when it ends in `.json` (what a run records).
fn read_file(path: &Path) -> Result<toml::Table, SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let error = |message: String| SettingsError::File {
        path: path.to_path_buf(),
        message,
    };
    // Typed once for errors with the line and key, kept as a table for the overrides.
    if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str::<Settings>(&text).map_err(|e| error(e.to_string()))?;
        let json: serde_json::Value = serde_json::from_str(&text).expect("read just now");
        return toml::Table::try_from(json).map_err(|e| error(e.to_string()));
    }
    toml::from_str::<Settings>(&text).map_err(|e| error(e.to_string()))?;
    toml::from_str::<toml::Table>(&text).map_err(|e| error(e.to_string()))
}

/// An error of the TOML reader without its line breaks (which end in the key: "… in `x.y`").
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Puts `layer`'s keys over `table`'s: a section's keys one by one, each value whole (a file's
/// `fpu = { absolute = -1.0 }` replaces a reduction).
fn merge(table: &mut toml::Table, layer: toml::Table) {
    for (key, value) in layer {
        match (table.get_mut(&key), value) {
            (Some(toml::Value::Table(section)), toml::Value::Table(keys)) => section.extend(keys),
            (_, value) => {
                table.insert(key, value);
            }
        }
    }
}

fn from_table(table: toml::Table) -> Result<Settings, toml::de::Error> {
    toml::Value::Table(table).try_into()
}

/// Sets the dotted `key` of `table` to `value`, making the tables on the way.
fn insert(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let (path, last) = match key.rsplit_once('.') {
        Some((path, last)) => (Some(path), last),
        None => (None, key),
    };
    let mut table = table;
    for part in path.into_iter().flat_map(|p| p.split('.')) {
        let entry = table
            .entry(part)
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| format!("{part} is a value, not a table of settings"))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests;
