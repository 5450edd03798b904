//! Arena planning: which activation lives in which reusable slot.
//!
//! Greedy best-fit over the schedule, in the spirit of ONNX Runtime's and TFLite's
//! planners: a slot is released right after the last step that reads any value
//! stored in it (reshape-like aliases extend that lifetime), and a new value takes
//! the smallest free slot of its dtype that fits, growing the largest one if none
//! does. A step whose kernel offers to run in place writes its first output over
//! the offered input when that input dies at the step (and is not read twice by
//! it): the output takes the slot over instead of a new one. Plans are built once
//! per input-shape set, so this runs rarely.

use std::collections::HashMap;

use crate::error::Result;
use crate::ir::Fact;
use crate::plan::{Loc, Plan, Step};
use crate::tensor::DType;

/// One arena slot: a buffer of `len` elements of `dtype`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotInfo {
    pub dtype: DType,
    pub len: usize,
}

/// Rewrites the plan's provisional slot numbers (the id of the value that owns the
/// memory) into real arena slots, and fills `plan.slots`.
pub(super) fn assign_slots<K>(plan: &mut Plan<K>, facts: &[Fact]) -> Result<()> {
    let n_steps = plan.steps.len();
    // Last step reading each owner; graph outputs live to the end.
    let mut last_use: HashMap<usize, usize> = HashMap::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for (owner, _) in &step.outputs {
            last_use.entry(*owner).or_insert(i);
        }
        for loc in step.inputs.iter().flatten() {
            if let Loc::Slot { slot, .. } = loc {
                last_use.insert(*slot, i);
            }
        }
    }
    for loc in &plan.outputs {
        if let Loc::Slot { slot, .. } = loc {
            last_use.insert(*slot, n_steps);
        }
    }
    let mut release_at: Vec<Vec<usize>> = vec![Vec::new(); n_steps + 1];
    for (&owner, &step) in &last_use {
        release_at[step].push(owner);
    }

    let mut slots: Vec<crate::plan::SlotInfo> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut slot_of: HashMap<usize, usize> = HashMap::new();
    for (i, step) in plan.steps.iter_mut().enumerate() {
        let taken_over = step.in_place.and_then(|input| {
            let (owner, out) = dying_input(step, input, i, &last_use, facts)?;
            let slot = *slot_of.get(&owner)?;
            slot_of.insert(out, slot);
            Some(owner)
        });
        step.in_place = step.in_place.filter(|_| taken_over.is_some());
        let fresh = step.outputs.iter().skip(taken_over.map_or(0, |_| 1));
        for (owner, shape) in fresh {
            let dtype = facts[*owner].dtype;
            let need: usize = shape.iter().product();
            let fits = free
                .iter()
                .enumerate()
                .filter(|(_, &s)| slots[s].dtype == dtype && slots[s].len >= need)
                .min_by_key(|(_, &s)| slots[s].len)
                .map(|(k, _)| k);
            let grow = || {
                free.iter()
                    .enumerate()
                    .filter(|(_, &s)| slots[s].dtype == dtype)
                    .max_by_key(|(_, &s)| slots[s].len)
                    .map(|(k, _)| k)
            };
            let slot = match fits.or_else(grow) {
                Some(k) => free.swap_remove(k),
                None => {
                    slots.push(SlotInfo { dtype, len: 0 });
                    slots.len() - 1
                }
            };
            slots[slot].len = slots[slot].len.max(need);
            slot_of.insert(*owner, slot);
        }
        // An input taken over lives on as the output: its slot stays in use.
        for owner in release_at[i].iter().filter(|&&o| Some(o) != taken_over) {
            if let Some(&s) = slot_of.get(owner) {
                free.push(s);
            }
        }
    }

    let remap = |loc: &mut Loc| {
        if let Loc::Slot { slot, .. } = loc {
            *slot = slot_of[slot];
        }
    };
    for step in &mut plan.steps {
        step.inputs.iter_mut().flatten().for_each(remap);
        for (owner, _) in &mut step.outputs {
            *owner = slot_of[owner];
        }
    }
    plan.outputs.iter_mut().for_each(remap);
    plan.slots = slots;
    Ok(())
}

/// The slot owner of `step`'s input `input`, and the step's first output, if that
/// output may be written over the input: a value in the arena, read for the last
/// time here, by this input alone, with the output's dtype and size.
fn dying_input<K>(
    step: &Step<K>,
    input: usize,
    index: usize,
    last_use: &HashMap<usize, usize>,
    facts: &[Fact],
) -> Option<(usize, usize)> {
    let Some(Some(Loc::Slot { slot: owner, shape })) = step.inputs.get(input) else {
        return None;
    };
    let (out, out_shape) = step.outputs.first()?;
    let read_elsewhere = step
        .inputs
        .iter()
        .enumerate()
        .any(|(k, loc)| k != input && matches!(loc, Some(Loc::Slot { slot, .. }) if slot == owner));
    let fits = facts[*owner].dtype == facts[*out].dtype
        && shape.iter().product::<usize>() == out_shape.iter().product::<usize>();
    (last_use.get(owner) == Some(&index) && !read_elsewhere && fits).then_some((*owner, *out))
}
