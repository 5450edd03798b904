//! Execution plans: the graph specialised to concrete input shapes.
//!
//! A plan is built once per distinct set of input shapes (so one session runs a
//! dynamic-batch model at batch 1 and batch 8 without reloading) and guarantees to
//! the executor:
//! - every value has a concrete shape and a location: a constant, a caller input, or
//!   a slot of the activation arena;
//! - everything computable from constants alone (weights transforms, the TorchScript
//!   exporter's `Shape → Gather → Concat → Reshape` chains) was computed here, once;
//! - reshape-like ops cost nothing: their output is the input's memory, relabelled;
//! - arena slots are reused as soon as the values in them are dead, so running the
//!   plan allocates no activation memory.

mod memory;
#[cfg(test)]
mod tests;

use crate::backend::cpu;
use crate::error::{Error, Result};
use crate::ir::{shape, Fact, Graph, Op};
use crate::onnx::Limits;
use crate::tensor::{checked_numel, DType, Tensor};

pub use memory::SlotInfo;

/// Where a value lives while a plan runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Loc {
    /// `Plan::constants[i]`
    Const(usize),
    /// The caller's `index`-th input tensor (never copied), seen with `shape`.
    Input { index: usize, shape: Vec<usize> },
    /// The first `numel(shape)` elements of arena slot `slot`.
    Slot { slot: usize, shape: Vec<usize> },
}

/// How a value's elements lie in memory. Shapes are always the ONNX ones
/// (`[N, C, H, W]`); a backend may ask for some values to be stored channels-last
/// between two of its own kernels (see [`Prepare::layouts`]).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Layout {
    /// Row-major in the order of the shape.
    #[default]
    AsShape,
    /// A 4-D `[N, C, H, W]` value stored as `[N, H, W, C]`.
    ChannelsLast,
}

/// What a backend may know about one input when it prepares a kernel.
#[derive(Copy, Clone, Debug)]
pub struct InputDesc<'a> {
    pub dtype: DType,
    pub shape: &'a [usize],
    /// The input's contents when it is a constant (weights, folded shape tensors).
    pub value: Option<&'a Tensor>,
    /// How the input lies in memory (constants always [`Layout::AsShape`]).
    pub layout: Layout,
}

/// dtype and shape of one output, as computed by shape inference, and the layout
/// the kernel must write it in.
#[derive(Clone, Debug)]
pub struct OutputDesc {
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub layout: Layout,
}

/// A backend's kernel preparation: called once per step while a plan is built, with
/// every shape concrete and constant inputs available. This is where a backend packs
/// weights and picks algorithms; the plan itself (schedule, folding, memory) is the
/// same for every backend.
pub trait Prepare {
    type Kernel;
    fn prepare(&self, op: &Op, inputs: &[Option<InputDesc>], outputs: &[OutputDesc]) -> Result<Self::Kernel>;

    /// The layout of each of `graph`'s values (indexed by value id) once concrete
    /// shapes are known (`facts`). A value the backend lays out otherwise than
    /// [`Layout::AsShape`] must be produced and consumed only by its own kernels
    /// that accept that layout: never a graph input or output, a constant, or the
    /// input of a reshape. By default every value is laid out as its shape says.
    fn layouts(&self, graph: &Graph, facts: &[Fact]) -> Vec<Layout> {
        let _ = facts;
        vec![Layout::AsShape; graph.values.len()]
    }

    /// The input a prepared kernel can find in its first output's buffer instead
    /// (see `cpu::kernel::Kernel::in_place_input`); the memory planner decides
    /// whether it may.
    fn in_place_input(&self, kernel: &Self::Kernel) -> Option<usize> {
        let _ = kernel;
        None
    }
}

/// One kernel invocation.
pub struct Step<K> {
    /// Index of the IR node, for errors and profiles.
    pub node: usize,
    pub kernel: K,
    pub inputs: Vec<Option<Loc>>,
    /// Output slots and shapes.
    pub outputs: Vec<(usize, Vec<usize>)>,
    /// The input whose slot the first output takes over, its value dying here: the
    /// kernel runs in place. Offered by the backend, confirmed by the memory planner.
    pub in_place: Option<usize>,
}

pub struct Plan<K> {
    pub steps: Vec<Step<K>>,
    pub constants: Vec<Tensor>,
    pub slots: Vec<SlotInfo>,
    pub outputs: Vec<Loc>,
    pub output_dtypes: Vec<DType>,
}

impl<K> Plan<K> {
    /// Bytes of activation memory one run of this plan needs.
    pub fn arena_bytes(&self) -> usize {
        self.slots.iter().map(|s| s.len * s.dtype.size()).sum()
    }
}

/// Integer graph inputs with at most this many elements are treated as "shape
/// tensors": their values become part of the plan (like TensorRT's shape inputs), so
/// a Reshape target or Slice bound fed as an input can still be planned.
pub const SHAPE_INPUT_MAX_ELEMENTS: usize = 64;

/// Whether a caller input's values (not just its shape) specialise the plan.
pub fn is_shape_input(t: &Tensor) -> bool {
    matches!(t.dtype(), DType::I64 | DType::I32) && t.len() <= SHAPE_INPUT_MAX_ELEMENTS
}

/// Specialises `graph` to the given inputs' shapes, with kernels from `backend`.
pub fn build<P: Prepare>(
    graph: &Graph,
    inputs: &[Tensor],
    limits: &Limits,
    backend: &P,
) -> Result<Plan<P::Kernel>> {
    let mut facts: Vec<Fact> = graph.values.iter().map(|v| v.fact.clone()).collect();
    let mut locs: Vec<Option<Loc>> = vec![None; graph.values.len()];
    let mut constants = Vec::new();
    let intern = |t: Tensor, constants: &mut Vec<Tensor>| {
        constants.push(t);
        Loc::Const(constants.len() - 1)
    };
    for (id, v) in graph.values.iter().enumerate() {
        if let Some(t) = &v.fact.value {
            locs[id] = Some(intern(t.clone(), &mut constants));
        }
    }
    for (i, (&id, t)) in graph.inputs.iter().zip(inputs).enumerate() {
        facts[id] = Fact::constant(t.clone());
        if !is_shape_input(t) {
            facts[id].value = None;
        }
        locs[id] = Some(Loc::Input {
            index: i,
            shape: t.shape().to_vec(),
        });
    }

    // First every value's concrete shape, folding what constants determine; then
    // the backend's layouts (which may look at any consumer's shapes); then kernels.
    let mut pending = Vec::new();
    for (index, node) in graph.nodes.iter().enumerate() {
        let err = |m: String| Error::shape(&node.name, m);
        let in_facts: Vec<Option<&Fact>> = node.inputs.iter().map(|i| i.map(|i| &facts[i])).collect();
        let mut out_facts = shape::infer(&node.op, &in_facts, node.outputs.len()).map_err(err)?;
        let out_shapes = out_facts
            .iter()
            .map(|f| {
                let s = f.concrete_shape().ok_or_else(|| {
                    err(format!(
                        "output shape {} depends on tensor data",
                        crate::ir::graph::shape_string(&f.shape)
                    ))
                })?;
                match checked_numel(&s) {
                    Some(n) if n <= limits.max_tensor_elements => Ok(s),
                    _ => Err(Error::Limit(format!(
                        "node '{}' would produce a tensor of shape {s:?} (limit {} elements)",
                        node.name, limits.max_tensor_elements
                    ))),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let all_constant = node.inputs.iter().flatten().all(|&i| facts[i].value.is_some());
        let shape_only = matches!(node.op, Op::Shape { .. } | Op::Size);
        if all_constant || shape_only {
            // Fold: compute the outputs now, once.
            let values = if let Some(v) = shape_value(&node.op, &in_facts) {
                vec![v]
            } else {
                let values: Vec<Option<&Tensor>> = node
                    .inputs
                    .iter()
                    .map(|i| i.and_then(|i| facts[i].value.as_ref()))
                    .collect();
                let out_descs: Vec<OutputDesc> = out_facts
                    .iter()
                    .zip(&out_shapes)
                    .map(|(f, s)| OutputDesc {
                        dtype: f.dtype,
                        shape: s.clone(),
                        layout: Layout::AsShape,
                    })
                    .collect();
                cpu::evaluate(&node.op, &values, &out_descs).map_err(|e| annotate(e, &node.name))?
            };
            for ((&out, fact), value) in node.outputs.iter().zip(&mut out_facts).zip(values) {
                fact.value = Some(value.clone());
                locs[out] = Some(intern(value, &mut constants));
            }
        } else if node.op.is_reshape_like() && node.outputs.len() == 1 {
            let src = node.inputs[0].ok_or_else(|| err("missing input".into()))?;
            locs[node.outputs[0]] = Some(relabel(&locs[src], &out_shapes[0], &mut constants)?);
        } else {
            for (&out, s) in node.outputs.iter().zip(&out_shapes) {
                // Slot numbers are assigned by the memory planner below.
                locs[out] = Some(Loc::Slot {
                    slot: out,
                    shape: s.clone(),
                });
            }
            pending.push((index, out_shapes));
        }
        for (&out, f) in node.outputs.iter().zip(out_facts) {
            facts[out] = f;
        }
    }

    let layouts = backend.layouts(graph, &facts);
    let fixed =
        |v: usize| graph.inputs.contains(&v) || graph.outputs.contains(&v) || facts[v].value.is_some();
    if layouts.len() != graph.values.len()
        || (0..layouts.len()).any(|v| layouts[v] != Layout::AsShape && fixed(v))
    {
        return Err(Error::invalid(
            "internal: a backend laid out a graph input, output or constant otherwise than its shape",
        ));
    }
    let mut steps = Vec::new();
    for (index, out_shapes) in pending {
        let node = &graph.nodes[index];
        let out_descs: Vec<OutputDesc> = node
            .outputs
            .iter()
            .zip(&out_shapes)
            .map(|(&out, s)| OutputDesc {
                dtype: facts[out].dtype,
                shape: s.clone(),
                layout: layouts[out],
            })
            .collect();
        let descs = descs(&node.inputs, &facts, &layouts);
        let kernel = backend
            .prepare(&node.op, &as_input_descs(&descs), &out_descs)
            .map_err(|e| annotate(e, &node.name))?;
        let inputs = node
            .inputs
            .iter()
            .map(|i| i.and_then(|i| locs[i].clone()))
            .collect();
        steps.push(Step {
            node: index,
            in_place: backend.in_place_input(&kernel),
            kernel,
            inputs,
            outputs: node.outputs.iter().copied().zip(out_shapes).collect(),
        });
    }

    let outputs: Vec<Loc> = graph
        .outputs
        .iter()
        .map(|&o| {
            locs[o]
                .clone()
                .ok_or_else(|| Error::invalid(format!("output '{}' is never computed", graph.values[o].name)))
        })
        .collect::<Result<_>>()?;
    let output_dtypes = graph.outputs.iter().map(|&o| facts[o].dtype).collect();
    let mut plan = Plan {
        steps,
        constants,
        slots: Vec::new(),
        outputs,
        output_dtypes,
    };
    memory::assign_slots(&mut plan, &facts)?;
    if plan.arena_bytes() > limits.max_arena_bytes {
        return Err(Error::Limit(format!(
            "activations need {} bytes, more than the {} allowed",
            plan.arena_bytes(),
            limits.max_arena_bytes
        )));
    }
    Ok(plan)
}

fn descs<'f>(inputs: &[Option<usize>], facts: &'f [Fact], layouts: &[Layout]) -> Vec<Option<OwnedDesc<'f>>> {
    inputs
        .iter()
        .map(|i| {
            i.map(|i| OwnedDesc {
                dtype: facts[i].dtype,
                shape: facts[i].concrete_shape().unwrap_or_default(),
                value: facts[i].value.as_ref(),
                layout: layouts[i],
            })
        })
        .collect()
}

/// An [`InputDesc`] whose shape is owned (facts store shapes as `Dim`s).
struct OwnedDesc<'f> {
    dtype: DType,
    shape: Vec<usize>,
    value: Option<&'f Tensor>,
    layout: Layout,
}

fn as_input_descs<'a>(d: &'a [Option<OwnedDesc<'a>>]) -> Vec<Option<InputDesc<'a>>> {
    d.iter()
        .map(|d| {
            d.as_ref().map(|d| InputDesc {
                dtype: d.dtype,
                shape: &d.shape,
                value: d.value,
                layout: d.layout,
            })
        })
        .collect()
}

/// `Shape` and `Size` only need the input's (concrete) shape.
fn shape_value(op: &Op, inputs: &[Option<&Fact>]) -> Option<Tensor> {
    let s = inputs.first().copied().flatten()?.concrete_shape()?;
    match op {
        Op::Shape { start, end } => {
            let (a, b) = shape::shape_range(s.len(), *start, *end);
            let v: Vec<i64> = s[a..b].iter().map(|&d| d as i64).collect();
            Tensor::from_vec(vec![v.len()], v).ok()
        }
        Op::Size => Some(Tensor::scalar(s.iter().product::<usize>() as i64)),
        _ => None,
    }
}

/// The location of a reshape-like op's output: the input's memory with a new shape.
fn relabel(src: &Option<Loc>, shape: &[usize], constants: &mut Vec<Tensor>) -> Result<Loc> {
    Ok(match src {
        Some(Loc::Slot { slot, .. }) => Loc::Slot {
            slot: *slot,
            shape: shape.to_vec(),
        },
        Some(Loc::Const(c)) => {
            let t = constants[*c].clone().reshaped(shape.to_vec())?;
            constants.push(t);
            Loc::Const(constants.len() - 1)
        }
        Some(Loc::Input { index, .. }) => Loc::Input {
            index: *index,
            shape: shape.to_vec(),
        },
        None => return Err(Error::invalid("internal: reshape of an unplanned value")),
    })
}

/// The node name kernels put in their errors; the planner replaces it with the real one.
pub const KERNEL_NODE: &str = "kernel";

fn annotate(e: Error, node: &str) -> Error {
    match e {
        Error::Unsupported(mut items) => {
            for u in items.iter_mut().filter(|u| u.node == KERNEL_NODE) {
                u.node = node.into();
            }
            Error::Unsupported(items)
        }
        Error::Shape { node: n, message } if n == KERNEL_NODE => Error::Shape {
            node: node.into(),
            message,
        },
        Error::Shape { node: n, message } => Error::Shape {
            node: node.into(),
            message: format!("{n}: {message}"),
        },
        other => other,
    }
}
