//! Search cost without a network: one Medium (3 worlds × 30 simulations) search of a
//! 4-player × 5-card opening position with [`UniformBackend`], so the time is the search's own
//! (sampling, selection, encoding, hashing, backup). Throughput counts simulations.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::game::{Round, RoundConfig, Seat, Suit};
use engine::net::UniformBackend;
use engine::search::{run_blocking, EvalCache, LeafValues, Search, SearchConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

fn bench_search(c: &mut Criterion) {
    let table = RoundConfig {
        players: 4,
        cards: 5,
        dealer: Seat(0),
        trump: Some(Suit::Spades),
    };
    let opening = Round::deal(table, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
    let mut backend = UniformBackend { max_batch: 4096 };
    let mut group = c.benchmark_group("search");
    for (id, leaf_values) in [
        ("medium", LeafValues::All),
        ("medium_mover", LeafValues::Mover),
    ] {
        let config = SearchConfig {
            leaf_values,
            ..SearchConfig::medium()
        };
        group.throughput(Throughput::Elements(u64::from(
            config.worlds * config.sims_per_world,
        )));
        // A worker reuses one search per game; the cache is off so every leaf is encoded.
        let mut search = Search::new(&opening, config, 0).unwrap();
        let mut cache = EvalCache::disabled();
        let mut seed = 0;
        group.bench_function(format!("{id}/uniform"), |b| {
            b.iter(|| {
                seed += 1;
                search.restart(&opening, seed).unwrap();
                black_box(run_blocking(&mut search, &mut backend, &mut cache).unwrap())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_search);
criterion_main!(benches);
