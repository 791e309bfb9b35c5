//! The batch ring's own cost: rows per second through a no-op backend (UniformBackend), with
//! one worker keeping two batches in flight as self-play does.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::net::{UniformBackend, INPUT_DIM};
use engine::ring::Ring;
use std::sync::Arc;

fn bench_ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring");
    for rows in [64usize, 512] {
        let ring = Arc::new(Ring::new(&mut UniformBackend { max_batch: rows }, 3, rows).unwrap());
        let server = {
            let ring = ring.clone();
            std::thread::spawn(move || ring.serve(&mut UniformBackend { max_batch: rows }))
        };
        let input = [0.5f32; INPUT_DIM];
        let inputs: Vec<f32> = input.repeat(rows);
        let masks = vec![(1u64 << 52) - 1; rows];
        // Two batches per iteration, the second submitted before the first is collected.
        g.throughput(Throughput::Elements(2 * rows as u64));
        g.bench_function(format!("uniform/{rows}_rows"), |b| {
            b.iter(|| {
                let mut tickets = [None, None];
                for t in &mut tickets {
                    let mut batch = ring.acquire().unwrap();
                    batch.push_rows(&inputs, &masks);
                    *t = Some(ring.submit(batch).unwrap());
                }
                for t in tickets {
                    let batch = ring.wait(t.unwrap()).unwrap();
                    std::hint::black_box(batch.output(rows - 1));
                    ring.release(batch);
                }
            })
        });
        ring.close();
        server.join().unwrap().unwrap();
    }
    g.finish();
}

criterion_group!(benches, bench_ring);
criterion_main!(benches);
