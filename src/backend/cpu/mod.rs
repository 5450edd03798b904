//! The CPU backend: kernels written in Rust, parallelised with rayon.

pub mod affinity;
pub mod awake;
mod channels_last;
pub mod executor;
pub mod kernel;
pub mod kernels;

use crate::error::Result;
use crate::ir::{Fact, Graph, Op};
use crate::plan::{Layout, Plan, Prepare};
use crate::tensor::{Data, Tensor, ViewMut};
use kernel::{InputDesc, Kernel, OutputDesc};

/// A plan whose steps run CPU kernels.
pub type CpuPlan = Plan<Box<dyn Kernel>>;

/// Algorithm choices of the CPU kernels that a user may want to override.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuOptions {
    /// Allow Winograd F(4x4, 3x3) for large stride-1 3x3 convolutions. It does a
    /// quarter of the multiply-adds, at 4x those layers' weight memory and about 8x
    /// their (still ~1e-6 relative) rounding error.
    pub winograd: bool,
    /// Store the values between depthwise and pointwise convolutions channels-last
    /// (see `channels_last.rs`; with AVX-512 only).
    pub channels_last: bool,
}

impl Default for CpuOptions {
    fn default() -> Self {
        CpuOptions {
            winograd: true,
            channels_last: true,
        }
    }
}

impl Prepare for CpuOptions {
    type Kernel = Box<dyn Kernel>;
    fn prepare(
        &self,
        op: &Op,
        inputs: &[Option<InputDesc>],
        outputs: &[OutputDesc],
    ) -> Result<Box<dyn Kernel>> {
        kernels::prepare(op, inputs, outputs, self)
    }

    fn layouts(&self, graph: &Graph, facts: &[Fact]) -> Vec<Layout> {
        if self.channels_last {
            channels_last::layouts(graph, facts)
        } else {
            vec![Layout::AsShape; graph.values.len()]
        }
    }

    fn in_place_input(&self, kernel: &Box<dyn Kernel>) -> Option<usize> {
        kernel.in_place_input()
    }
}

/// Runs one op on constant inputs and returns its outputs: constant folding, for the
/// optimizer and the planner. `inputs[i]` is `None` for an omitted optional input.
pub fn evaluate(op: &Op, inputs: &[Option<&Tensor>], outputs: &[OutputDesc]) -> Result<Vec<Tensor>> {
    let descs: Vec<Option<InputDesc>> = inputs
        .iter()
        .map(|t| {
            t.map(|t| InputDesc {
                dtype: t.dtype(),
                shape: t.shape(),
                value: Some(t),
                layout: Default::default(),
            })
        })
        .collect();
    let kernel = kernels::prepare(op, &descs, outputs, &CpuOptions::default())?;
    let views: Vec<_> = inputs.iter().map(|t| t.map(Tensor::view)).collect();
    let mut outs: Vec<Data> = outputs
        .iter()
        .map(|d| Data::zeros(d.dtype, d.shape.iter().product()))
        .collect();
    {
        let mut out_views: Vec<ViewMut> = outs
            .iter_mut()
            .zip(outputs)
            .map(|(data, d)| ViewMut {
                shape: &d.shape,
                data: data.slice_mut(),
            })
            .collect();
        kernel.run(&views, &mut out_views)?;
    }
    outs.into_iter()
        .zip(outputs)
        .map(|(data, d)| Tensor::new(d.shape.clone(), data))
        .collect()
}
