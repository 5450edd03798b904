//! Folding of shape arithmetic: the TorchScript exporter's
//! `Shape → Gather → Unsqueeze → Concat → Reshape` chains.
//!
//! With a symbolic batch dimension `Shape(x)` is not a constant, so plain constant
//! folding stops at it. This pass evaluates small integer tensors symbolically, one
//! element at a time: an element is a number, a named dimension (`batch`), or
//! unknown. Chains that end up all numbers become constants; a `Reshape` whose target
//! mixes numbers with dims it copies from its own input gets a constant target using
//! ONNX's `0` ("keep this dim") and `-1` ("infer this one"). The chain is then dead
//! and dead-code elimination removes it.

use std::collections::HashMap;

use super::rewrite::{add_constant, kill, sweep};
use crate::error::Result;
use crate::ir::ops::BinaryOp;
use crate::ir::{shape, Dim, Fact, Graph, Op, ValueId};
use crate::tensor::{DType, Tensor};

/// Longest integer vector evaluated symbolically (shapes are short).
const MAX_ELEMENTS: usize = 16;

#[derive(Clone, Debug, PartialEq)]
enum Elem {
    Int(i64),
    /// A named symbolic dimension.
    Dim(String),
    Unknown,
}

/// A rank-0 or rank-1 integer tensor, element by element.
#[derive(Clone, Debug)]
struct Sym {
    elems: Vec<Elem>,
    scalar: bool,
}

impl Sym {
    fn all_ints(&self) -> Option<Vec<i64>> {
        self.elems
            .iter()
            .map(|e| match e {
                Elem::Int(v) => Some(*v),
                _ => None,
            })
            .collect()
    }
}

fn elem_of(d: &Dim) -> Elem {
    match d {
        Dim::Known(n) => Elem::Int(*n as i64),
        Dim::Sym(s) if s != "?" => Elem::Dim(s.clone()),
        Dim::Sym(_) => Elem::Unknown,
    }
}

struct Evaluator<'g> {
    g: &'g Graph,
    known: &'g HashMap<ValueId, Sym>,
}

impl Evaluator<'_> {
    fn sym(&self, v: Option<ValueId>) -> Option<Sym> {
        let v = v?;
        if let Some(s) = self.known.get(&v) {
            return Some(s.clone());
        }
        let t = self.g.constant(v)?;
        if t.shape().len() > 1 || t.len() > MAX_ELEMENTS {
            return None;
        }
        Some(Sym {
            elems: t.to_i64_vec()?.into_iter().map(Elem::Int).collect(),
            scalar: t.shape().is_empty(),
        })
    }

    fn ints(&self, v: Option<ValueId>) -> Option<Vec<i64>> {
        self.sym(v)?.all_ints()
    }

    /// The symbolic value of `node`'s first output, when it is a small integer vector
    /// computed from shapes.
    fn eval(&self, op: &Op, inputs: &[Option<ValueId>]) -> Option<Sym> {
        let input = |i: usize| inputs.get(i).copied().flatten();
        match op {
            Op::Shape { start, end } => {
                let dims = self.g.values[input(0)?].fact.shape.as_ref()?;
                let (a, b) = shape::shape_range(dims.len(), *start, *end);
                Some(Sym {
                    elems: dims[a..b].iter().map(elem_of).collect(),
                    scalar: false,
                })
            }
            Op::Identity
            | Op::Cast {
                to: DType::I64 | DType::I32,
            } => self.sym(input(0)),
            Op::Gather { axis: 0 | -1 } => {
                let data = self.sym(input(0))?;
                let indices = self.g.constant(input(1)?)?;
                if data.scalar || indices.shape().len() > 1 {
                    return None;
                }
                let n = data.elems.len() as i64;
                let elems = indices
                    .to_i64_vec()?
                    .into_iter()
                    .map(|i| {
                        let i = if i < 0 { i + n } else { i };
                        (0..n).contains(&i).then(|| data.elems[i as usize].clone())
                    })
                    .collect::<Option<Vec<_>>>()?;
                Some(Sym {
                    elems,
                    scalar: indices.shape().is_empty(),
                })
            }
            Op::Unsqueeze => {
                let data = self.sym(input(0))?;
                (data.scalar && matches!(self.ints(input(1))?.as_slice(), [0] | [-1])).then_some(Sym {
                    scalar: false,
                    ..data
                })
            }
            Op::Squeeze => {
                let data = self.sym(input(0))?;
                (!data.scalar && data.elems.len() == 1).then_some(Sym { scalar: true, ..data })
            }
            Op::Concat { axis: 0 | -1 } => {
                let mut elems = Vec::new();
                for &v in inputs.iter().flatten() {
                    let s = self.sym(Some(v))?;
                    if s.scalar {
                        return None;
                    }
                    elems.extend(s.elems);
                }
                (elems.len() <= MAX_ELEMENTS).then_some(Sym { elems, scalar: false })
            }
            Op::Slice => {
                let data = self.sym(input(0))?;
                let (starts, ends) = (self.ints(input(1))?, self.ints(input(2))?);
                let axes = input(3).map_or(Some(vec![0]), |a| self.ints(Some(a)))?;
                let steps = input(4).map_or(Some(vec![1]), |s| self.ints(Some(s)))?;
                if data.scalar || starts.len() != 1 || ends.len() != 1 || !matches!(axes[..], [0] | [-1]) {
                    return None;
                }
                let (start, step, count) =
                    shape::slice_params(data.elems.len(), starts[0], ends[0], *steps.first()?).ok()?;
                let elems = (0..count)
                    .map(|k| data.elems[(start + k as i64 * step) as usize].clone())
                    .collect();
                Some(Sym { elems, scalar: false })
            }
            Op::Binary(op @ (BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div)) => {
                let (a, b) = (self.sym(input(0))?, self.sym(input(1))?);
                let n = a.elems.len().max(b.elems.len());
                if (a.elems.len() != n && a.elems.len() != 1) || (b.elems.len() != n && b.elems.len() != 1) {
                    return None;
                }
                let pick = |s: &Sym, i: usize| s.elems[if s.elems.len() == 1 { 0 } else { i }].clone();
                let elems = (0..n)
                    .map(|i| match (pick(&a, i), pick(&b, i)) {
                        (Elem::Int(x), Elem::Int(y)) => match op {
                            BinaryOp::Add => x.checked_add(y),
                            BinaryOp::Sub => x.checked_sub(y),
                            BinaryOp::Mul => x.checked_mul(y),
                            // ONNX integer Div truncates, like Rust's.
                            _ => x.checked_div(y),
                        }
                        .map_or(Elem::Unknown, Elem::Int),
                        _ => Elem::Unknown,
                    })
                    .collect();
                Some(Sym {
                    elems,
                    scalar: a.scalar && b.scalar,
                })
            }
            _ => None,
        }
    }
}

/// The constant `Reshape` target equivalent to `target` for an input of shape `dims`,
/// if there is one.
fn reshape_target(target: &Sym, dims: &[Dim], allowzero: bool) -> Option<Vec<i64>> {
    let mut out = Vec::with_capacity(target.elems.len());
    let mut unresolved = 0;
    for (k, e) in target.elems.iter().enumerate() {
        out.push(match e {
            Elem::Int(v) => *v,
            Elem::Dim(s) if !allowzero && dims.get(k) == Some(&Dim::Sym(s.clone())) => 0,
            _ => {
                unresolved += 1;
                -1
            }
        });
    }
    let inferred = out.iter().filter(|&&v| v == -1).count();
    (unresolved <= 1 && inferred <= 1).then_some(out)
}

pub fn fold_shape_chains(g: &mut Graph) -> Result<usize> {
    let mut rewrites = 0;
    let mut known = HashMap::new();
    for i in 0..g.nodes.len() {
        let (op, inputs, outputs) = {
            let n = &g.nodes[i];
            (n.op.clone(), n.inputs.clone(), n.outputs.clone())
        };
        if let Op::Reshape { allowzero } = op {
            let ev = Evaluator { g, known: &known };
            let target = match (
                inputs.first().copied().flatten(),
                inputs.get(1).copied().flatten(),
            ) {
                (Some(x), Some(s)) if g.constant(s).is_none() => ev
                    .sym(Some(s))
                    .filter(|t| !t.scalar)
                    .zip(g.values[x].fact.shape.as_ref())
                    .and_then(|(t, dims)| reshape_target(&t, dims, allowzero)),
                _ => None,
            };
            if let Some(target) = target {
                let len = target.len();
                let t = Tensor::from_vec(vec![len], target)?;
                let c = add_constant(g, &g.nodes[i].name.clone(), t);
                g.nodes[i].inputs[1] = Some(c);
                rewrites += 1;
            }
            continue;
        }
        let [out] = outputs[..] else { continue };
        let Some(sym) = (Evaluator { g, known: &known }).eval(&op, &inputs) else {
            continue;
        };
        match (sym.all_ints(), g.values[out].fact.dtype) {
            (Some(ints), dtype @ (DType::I64 | DType::I32)) if !matches!(op, Op::Identity) => {
                let shape = if sym.scalar { vec![] } else { vec![ints.len()] };
                let t = match dtype {
                    DType::I64 => Tensor::from_vec(shape, ints)?,
                    _ => Tensor::from_vec(shape, ints.iter().map(|&v| v as i32).collect::<Vec<_>>())?,
                };
                g.values[out].fact = Fact::constant(t);
                kill(g, i);
                rewrites += 1;
            }
            _ => {
                known.insert(out, sym);
            }
        }
    }
    sweep(g);
    Ok(rewrites)
}
