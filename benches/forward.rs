//! CPU forward throughput (criterion prints evals/s): a fresh BlobNet on encoder-like rows,
//! every action legal, at B = 1, 32, 256 and 1024. Ids: `forward/cpu/{B}`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use engine::net::cpu::CpuBackend;
use engine::net::synthetic::{all_legal_masks, encoder_like_inputs};
use engine::net::weights::{PreparedWeights, Weights};
use engine::net::{Backend, BatchIn, BatchOut, POLICY_DIM};

fn forward(c: &mut Criterion) {
    let weights = Arc::new(PreparedWeights::new(&Weights::init(0)));
    let mut group = c.benchmark_group("forward");
    // A B=1024 forward takes ~20 ms: 20 samples keep the group near its 5 s target.
    group.sample_size(20);
    for batch in [1, 32, 256, 1024] {
        let mut backend = CpuBackend::new(weights.clone(), batch);
        let inputs = encoder_like_inputs(batch, 1);
        let masks = all_legal_masks(batch);
        let (mut policy, mut value) = (vec![0.0; batch * POLICY_DIM], vec![0.0; batch]);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("cpu", batch), |b| {
            b.iter(|| {
                backend
                    .forward(
                        BatchIn {
                            inputs: &inputs,
                            masks: &masks,
                        },
                        BatchOut {
                            policy: &mut policy,
                            value: &mut value,
                        },
                    )
                    .expect("forward")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, forward);
criterion_main!(benches);
