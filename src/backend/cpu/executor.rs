//! Runs a [`Plan`] on the CPU: views in, kernels, views out.

use crate::backend::cpu::CpuPlan as Plan;
use crate::error::{Error, Result};
use crate::plan::Loc;
use crate::tensor::{DataVec, Tensor, View, ViewMut};

/// The activation memory of one plan: one buffer per slot, allocated once and
/// reused by every run that borrows this arena.
pub struct Arena {
    bufs: Vec<DataVec>,
    /// The per-step lists of buffers and views, kept empty between steps so their
    /// allocations are reused: a run allocates nothing but its outputs.
    taken: Vec<DataVec>,
    in_views: Vec<Option<View<'static>>>,
    out_views: Vec<ViewMut<'static>>,
}

impl Arena {
    pub fn for_plan(plan: &Plan) -> Arena {
        let bufs = plan
            .slots
            .iter()
            .map(|s| {
                let mut v = DataVec::new(s.dtype);
                v.reserve_len(s.len);
                v
            })
            .collect();
        Arena {
            bufs,
            taken: Vec::new(),
            in_views: Vec::new(),
            out_views: Vec::new(),
        }
    }
}

/// An emptied vector with its allocation, retyped for borrows of another lifetime:
/// collecting an empty `vec::IntoIter` into a vector of a same-layout type reuses
/// the buffer in place.
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter()
        .map(|_| unreachable!("the vector was cleared"))
        .collect()
}

fn view<'a>(loc: &'a Loc, plan: &'a Plan, bufs: &'a [DataVec], inputs: &'a [Tensor]) -> View<'a> {
    match loc {
        Loc::Const(c) => plan.constants[*c].view(),
        Loc::Input { index, shape } => View {
            shape,
            data: inputs[*index].data().slice(),
        },
        Loc::Slot { slot, shape } => View {
            shape,
            data: bufs[*slot].slice(shape.iter().product()),
        },
    }
}

/// Called after each step with the step index and its duration (for profiles).
pub type StepHook<'h> = &'h mut (dyn FnMut(usize, std::time::Duration) + Send);

/// Executes every step of `plan` and returns the graph outputs.
pub fn execute(
    plan: &Plan,
    arena: &mut Arena,
    inputs: &[Tensor],
    mut hook: Option<StepHook>,
) -> Result<Vec<Tensor>> {
    let mut in_spare = std::mem::take(&mut arena.in_views);
    let mut out_spare = std::mem::take(&mut arena.out_views);
    let mut result = Ok(());
    for (index, step) in plan.steps.iter().enumerate() {
        let start = hook.as_ref().map(|_| std::time::Instant::now());
        // Outputs never share a slot with this step's inputs (the memory planner
        // releases a slot only after its last reader), so they can be moved out;
        // the one exception, an in-place step's taken-over input, is not viewed.
        arena.taken.extend(step.outputs.iter().map(|(slot, _)| {
            let dtype = arena.bufs[*slot].dtype();
            std::mem::replace(&mut arena.bufs[*slot], DataVec::new(dtype))
        }));
        let mut in_views: Vec<Option<View>> = recycle(in_spare);
        in_views.extend(step.inputs.iter().enumerate().map(|(k, l)| match step.in_place {
            Some(taken) if taken == k => None,
            _ => l.as_ref().map(|l| view(l, plan, &arena.bufs, inputs)),
        }));
        let mut out_views: Vec<ViewMut> = recycle(out_spare);
        out_views.extend(
            arena
                .taken
                .iter_mut()
                .zip(&step.outputs)
                .map(|(buf, (_, shape))| ViewMut {
                    shape,
                    data: buf.slice_mut(shape.iter().product()),
                }),
        );
        result = match step.in_place {
            Some(_) => step.kernel.run_in_place(&in_views, &mut out_views),
            None => step.kernel.run(&in_views, &mut out_views),
        };
        in_spare = recycle(in_views);
        out_spare = recycle(out_views);
        for ((slot, _), buf) in step.outputs.iter().zip(arena.taken.drain(..)) {
            arena.bufs[*slot] = buf;
        }
        if result.is_err() {
            break;
        }
        if let (Some(h), Some(t)) = (hook.as_mut(), start) {
            h(index, t.elapsed());
        }
    }
    arena.in_views = in_spare;
    arena.out_views = out_spare;
    result?;
    plan.outputs
        .iter()
        .map(|loc| {
            let v = view(loc, plan, &arena.bufs, inputs);
            Tensor::new(v.shape.to_vec(), v.data.to_data())
        })
        .collect::<Result<Vec<_>>>()
        .map_err(|e| Error::invalid(format!("internal: output copy failed: {e}")))
}
