//! What a prepared GPU kernel is: host-side data only (dispatch descriptions,
//! packed weights), so preparing a plan needs no GPU and can be tested anywhere.
//! Each backend's executor makes it resident once per plan (wgpu: pipelines and
//! bind groups; CUDA: loaded functions and device pointers).

use crate::error::{Error, Result};
use crate::plan::{Loc, Step};

use super::Entry;

/// A buffer a dispatch binds, in the entry point's binding order.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    /// The step's `i`-th input.
    Input(usize),
    /// The step's `i`-th output.
    Output(usize),
    /// The kernel's `i`-th weight buffer ([`GpuKernel::weights`]).
    Weight(usize),
    /// The kernel's `i`-th scratch buffer ([`GpuKernel::scratch`]).
    Scratch(usize),
    /// A binding the entry point declares but this dispatch never reads.
    Unused,
}

/// One kernel launch: a grid of `groups` workgroups of the entry's `group_size`.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub entry: Entry,
    /// The entry's parameter block (its WGSL uniform struct and CUDA C by-value
    /// struct, byte for byte).
    pub params: Vec<u8>,
    /// Read-only storage bindings, then read-write ones, after the uniform.
    pub reads: Vec<Bind>,
    pub writes: Vec<Bind>,
    pub groups: [u32; 3],
}

impl Dispatch {
    pub fn new<P: bytemuck::Pod>(
        entry: Entry,
        params: &P,
        reads: Vec<Bind>,
        writes: Vec<Bind>,
        groups: [u32; 3],
    ) -> Dispatch {
        Dispatch {
            entry,
            params: bytemuck::bytes_of(params).to_vec(),
            reads,
            writes,
            groups,
        }
    }
}

impl Dispatch {
    /// An internal error unless the dispatch binds as many buffers as its entry
    /// point declares.
    pub fn check_bindings(&self) -> Result<()> {
        let (reads, writes) = self.entry.bindings();
        if self.reads.len() != reads || self.writes.len() != writes {
            return Err(Error::invalid(format!(
                "internal: {} binds {}+{} buffers, not {reads}+{writes}",
                self.entry.name(),
                self.reads.len(),
                self.writes.len()
            )));
        }
        Ok(())
    }
}

/// Where a bound buffer lives once a plan is resident, in either GPU executor.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BufferId {
    Slot(usize),
    Input(usize),
    Const(usize),
    Weight { step: usize, index: usize },
    Scratch { step: usize, index: usize },
    Dummy,
}

impl BufferId {
    /// The buffer a value at `loc` is read from.
    pub fn of_loc(loc: &Loc) -> BufferId {
        match loc {
            Loc::Slot { slot, .. } => BufferId::Slot(*slot),
            Loc::Input { index, .. } => BufferId::Input(*index),
            Loc::Const(c) => BufferId::Const(*c),
        }
    }

    /// The buffer binding `b` of step number `s` names.
    pub fn of_bind<K>(b: Bind, s: usize, step: &Step<K>) -> Result<BufferId> {
        Ok(match b {
            Bind::Input(i) => BufferId::of_loc(
                step.inputs
                    .get(i)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| Error::invalid(format!("internal: binding of absent input {i}")))?,
            ),
            Bind::Output(i) => BufferId::Slot(
                step.outputs
                    .get(i)
                    .ok_or_else(|| Error::invalid("internal: binding of a missing output"))?
                    .0,
            ),
            Bind::Weight(index) => BufferId::Weight { step: s, index },
            Bind::Scratch(index) => BufferId::Scratch { step: s, index },
            Bind::Unused => BufferId::Dummy,
        })
    }
}

/// A prepared kernel: the dispatches that compute one IR node, in order.
#[derive(Clone, Debug, Default)]
pub struct GpuKernel {
    pub label: &'static str,
    pub dispatches: Vec<Dispatch>,
    /// Constant data the kernel owns (packed weights, folded BatchNorm scales),
    /// uploaded once, in the session's precision.
    pub weights: Vec<Vec<f32>>,
    /// Element counts of buffers private to the kernel (intermediate results).
    pub scratch: Vec<usize>,
}

impl GpuKernel {
    pub fn new(label: &'static str) -> GpuKernel {
        GpuKernel {
            label,
            ..GpuKernel::default()
        }
    }

    /// Adds a weight buffer, returning its binding.
    pub fn weight(&mut self, data: Vec<f32>) -> Bind {
        self.weights.push(data);
        Bind::Weight(self.weights.len() - 1)
    }

    /// Adds a scratch buffer of `len` elements, returning its binding.
    pub fn scratch(&mut self, len: usize) -> Bind {
        self.scratch.push(len);
        Bind::Scratch(self.scratch.len() - 1)
    }

    pub fn push(&mut self, d: Dispatch) {
        self.dispatches.push(d);
    }
}

/// Largest number of workgroups in one grid dimension (WebGPU's default limit).
pub const MAX_GROUPS_PER_DIM: u32 = 65_535;

/// A grid of `ceil(items / per_group)` workgroups, folded into two dimensions when
/// it does not fit in one (the kernels' `flat_id` undoes the folding).
pub fn grid_1d(items: usize, per_group: usize) -> Result<[u32; 3]> {
    let groups = items.div_ceil(per_group.max(1)).max(1);
    let x = groups.min(MAX_GROUPS_PER_DIM as usize);
    let y = groups.div_ceil(x);
    if y > MAX_GROUPS_PER_DIM as usize {
        return Err(Error::Limit(format!(
            "{items} elements are too many for one GPU dispatch"
        )));
    }
    Ok([x as u32, y as u32, 1])
}

/// `v` as a u32 kernel parameter, or a limit error (GPU indices are 32-bit).
pub fn u32_param(v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::Limit(format!("{v} does not fit the GPU's 32-bit indices")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_folds_into_two_dimensions() {
        assert_eq!(grid_1d(1000, 256).unwrap(), [4, 1, 1]);
        assert_eq!(grid_1d(0, 256).unwrap(), [1, 1, 1]);
        let g = grid_1d(70_000 * 256, 256).unwrap();
        assert!(g[0] <= MAX_GROUPS_PER_DIM && g[0] as usize * g[1] as usize >= 70_000);
        assert!(grid_1d(usize::MAX / 2, 1).is_err());
    }
}
