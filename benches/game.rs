//! Rules and encoder costs: encoding one state, and applying a move plus computing the next
//! legal mask (what search does at every step).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use engine::encode::{encode_into, EncoderVersion};
use engine::game::{Round, RoundConfig, Seat, Suit};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::hint::black_box;

/// Mid-round positions of random 4-player × 5-card rounds (random legal play).
fn positions(n: usize) -> Vec<Round> {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let cfg = RoundConfig {
        players: 4,
        cards: 5,
        dealer: Seat(0),
        trump: Some(Suit::Spades),
    };
    (0..n)
        .map(|_| {
            let mut r = Round::deal(cfg, &mut rng).unwrap();
            for _ in 0..rng.random_range(0..20) {
                let mask = r.legal_mask();
                let legal: Vec<u8> = (0..52).filter(|&a| mask >> a & 1 == 1).collect();
                r.apply(legal[rng.random_range(0..legal.len())]);
            }
            r
        })
        .collect()
}

fn bench_encode(c: &mut Criterion) {
    let states = positions(256);
    let mut out = [0.0f32; 256];
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(states.len() as u64));
    g.bench_function("v2_plus_mask/256_states", |b| {
        b.iter(|| {
            for r in &states {
                encode_into(r, r.to_act(), EncoderVersion::V2, &mut out);
                black_box(&out);
                black_box(r.legal_mask());
            }
        })
    });
    g.finish();
}

fn bench_apply(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let cfg = RoundConfig {
        players: 4,
        cards: 5,
        dealer: Seat(0),
        trump: Some(Suit::Spades),
    };
    let mut g = c.benchmark_group("rules");
    // One round is 4 bids + 20 plays: each step copies nothing but applies and masks.
    g.throughput(Throughput::Elements(24));
    g.bench_function("play_round/apply_plus_legal_mask", |b| {
        b.iter_batched(
            || (Round::deal(cfg, &mut rng).unwrap(), rng.random::<u64>()),
            |(mut r, mut bits)| {
                while !r.is_over() {
                    let mask = r.legal_mask();
                    // Pick the legal action at a pseudo-random rank without allocating.
                    let k = (bits % u64::from(mask.count_ones())) as u32;
                    bits = bits.rotate_left(7) ^ 0x9E37_79B9_7F4A_7C15;
                    let mut m = mask;
                    for _ in 0..k {
                        m &= m - 1;
                    }
                    r.apply(m.trailing_zeros() as u8);
                }
                black_box(r)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_encode, bench_apply);
criterion_main!(benches);
