//! CUDA graphs: [`Capture`], a RAII guard around stream capture (lc0's `CudaGraphCapture`),
//! and [`GraphSet`], one instantiated graph per batch bucket.

use std::sync::Arc;

use cudarc::driver::sys::{CUgraphInstantiate_flags, CUstreamCaptureMode};
use cudarc::driver::{CudaGraph, CudaStream};

use super::error::CudaError;

/// Stream capture in progress on one stream. Ending it yields the instantiated graph; dropping
/// it without [`Capture::end`] (an error inside the capture) ends the capture and discards
/// the graph, so the stream is never left capturing.
pub struct Capture<'a> {
    stream: &'a Arc<CudaStream>,
    bucket: usize,
    open: bool,
}

impl<'a> Capture<'a> {
    /// Starts capturing `stream` in thread-local mode: other threads' CUDA calls (another
    /// backend, a test running beside this one) cannot invalidate it.
    pub fn begin(stream: &'a Arc<CudaStream>, bucket: usize) -> Result<Self, CudaError> {
        stream
            .begin_capture(CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| CudaError::Capture {
                bucket,
                stage: "begin capture",
                source: e,
            })?;
        Ok(Capture {
            stream,
            bucket,
            open: true,
        })
    }

    /// Ends the capture and instantiates the graph; an empty or invalidated capture is an
    /// error naming the bucket, never a null graph that fails later.
    pub fn end(mut self) -> Result<CudaGraph, CudaError> {
        self.open = false;
        let bucket = self.bucket;
        match self.stream.end_capture(CUgraphInstantiate_flags(0)) {
            Ok(Some(graph)) => {
                graph.upload().map_err(|e| CudaError::Capture {
                    bucket,
                    stage: "graph upload",
                    source: e,
                })?;
                Ok(graph)
            }
            Ok(None) => Err(CudaError::EmptyCapture { bucket }),
            Err(e) => Err(CudaError::Capture {
                bucket,
                stage: "end capture",
                source: e,
            }),
        }
    }
}

impl Drop for Capture<'_> {
    fn drop(&mut self) {
        if self.open {
            // Ending a failed capture returns an error or a graph nobody wants; either way
            // the stream leaves capture mode.
            let _ = self.stream.end_capture(CUgraphInstantiate_flags(0));
        }
    }
}

/// One graph per bucket, ascending by bucket.
#[derive(Default)]
pub struct GraphSet {
    graphs: Vec<(usize, CudaGraph)>,
}

// SAFETY: a CUDA graph must not be used from two threads at once. GraphSet is owned by one
// CudaBackend, whose every use (`forward`) takes `&mut self`, so accesses are serialised even
// when the backend moves to another thread; the context is bound on each call.
unsafe impl Send for GraphSet {}

impl GraphSet {
    pub fn insert(&mut self, bucket: usize, graph: CudaGraph) {
        self.graphs.push((bucket, graph));
        self.graphs.sort_by_key(|(b, _)| *b);
    }

    pub fn get(&self, bucket: usize) -> Option<&CudaGraph> {
        self.graphs
            .iter()
            .find(|(b, _)| *b == bucket)
            .map(|(_, g)| g)
    }

    pub fn count(&self) -> usize {
        self.graphs.len()
    }
}
