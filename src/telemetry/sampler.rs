//! A run's GPU utilisation, sampled through NVML as the run reports progress.

use super::nvml::{nvml_snapshot, GpuStats};

/// Samples one GPU (NVML's index) and keeps its utilisation figures.
#[derive(Debug)]
pub struct GpuSampler {
    device: usize,
    util_percent: Vec<u32>,
}

impl GpuSampler {
    /// Fewer samples than this (a run of about a second) say nothing.
    const MIN_SAMPLES: usize = 5;
    /// Below this mean utilisation the GPU waited for work most of the time.
    const UNDERFED_PERCENT: f64 = 50.0;

    pub fn new(device: usize) -> GpuSampler {
        GpuSampler {
            device,
            util_percent: Vec::new(),
        }
    }

    /// The GPU's state now (`None` without NVML), its utilisation kept.
    pub fn sample(&mut self) -> Option<GpuStats> {
        let stats = nvml_snapshot(self.device)?;
        self.push(stats.util_percent);
        Some(stats)
    }

    fn push(&mut self, percent: u32) {
        self.util_percent.push(percent);
    }

    /// Mean utilisation over the samples taken.
    pub fn mean(&self) -> Option<f64> {
        let n = self.util_percent.len();
        (n > 0).then(|| self.util_percent.iter().map(|&p| f64::from(p)).sum::<f64>() / n as f64)
    }

    /// A one-line hint when the GPU was underfed over a run long enough to tell.
    pub fn underfed_hint(&self) -> Option<String> {
        let mean = self
            .mean()
            .filter(|_| self.util_percent.len() >= Self::MIN_SAMPLES)?;
        (mean < Self::UNDERFED_PERCENT).then(|| {
            format!(
                "hint: the GPU ran kernels {mean:.0}% of the time: the search threads did not \
                 keep it fed. More games per worker (--games-per-worker) put more batches in \
                 flight; more cores (--workers) add search; --leaf-values all gives it more \
                 rows per leaf"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::GpuSampler;

    #[test]
    fn the_underfed_hint_needs_a_long_enough_run_with_a_mostly_idle_gpu() {
        let samples = |v: &[u32]| {
            let mut u = GpuSampler::new(0);
            v.iter().for_each(|&p| u.push(p));
            u
        };
        assert_eq!(samples(&[]).mean(), None);
        assert_eq!(samples(&[20, 40]).mean(), Some(30.0));
        assert!(
            samples(&[10, 10, 10, 10]).underfed_hint().is_none(),
            "too short to tell"
        );
        let idle = samples(&[10, 20, 30, 40, 50])
            .underfed_hint()
            .expect("a hint");
        assert!(
            idle.contains("30%") && idle.contains("--games-per-worker"),
            "{idle}"
        );
        assert!(samples(&[90, 95, 40, 99, 97]).underfed_hint().is_none());
    }
}
