//! Shape and dtype inference for every op.
//!
//! One function serves both uses: at load time dims may be symbolic (the dynamic
//! batch axis stays `batch` through the whole network), and at plan time every
//! graph input is concrete, so every output shape becomes concrete. Inputs that
//! decide a shape (Reshape's target, Slice bounds, axes, pads…) are read from
//! constant facts; when they are not known the result has unknown dims instead.

use crate::ir::graph::{Dim, Fact};
use crate::ir::ops::*;
use crate::ir::window;
use crate::tensor::DType;

type R<T> = std::result::Result<T, String>;

fn input<'f>(inputs: &[Option<&'f Fact>], i: usize) -> R<&'f Fact> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| format!("missing required input {i}"))
}

fn shape_of(f: &Fact) -> Option<&[Dim]> {
    f.shape.as_deref()
}

/// Integer contents of a constant input, if known.
fn ints(inputs: &[Option<&Fact>], i: usize) -> Option<Vec<i64>> {
    inputs.get(i).copied().flatten()?.value.as_ref()?.to_i64_vec()
}

fn known(n: usize) -> Dim {
    Dim::Known(n)
}

/// Normalises a possibly negative axis for a tensor of rank `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> R<usize> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(if axis < 0 {
        (axis + r) as usize
    } else {
        axis as usize
    })
}

/// Multidirectional (numpy) broadcasting of two shapes.
pub fn broadcast(a: &[Dim], b: &[Dim]) -> R<Vec<Dim>> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            &a[i + a.len() - rank]
        } else {
            &Dim::Known(1)
        };
        let db = if i + b.len() >= rank {
            &b[i + b.len() - rank]
        } else {
            &Dim::Known(1)
        };
        out.push(match (da, db) {
            (Dim::Known(1), d) | (d, Dim::Known(1)) => d.clone(),
            (Dim::Known(x), Dim::Known(y)) if x == y => known(*x),
            (Dim::Known(x), Dim::Known(y)) => return Err(format!("cannot broadcast dims {x} and {y}")),
            // A symbol against a number > 1 must equal that number to be valid.
            (Dim::Known(x), Dim::Sym(_)) | (Dim::Sym(_), Dim::Known(x)) => known(*x),
            (Dim::Sym(x), Dim::Sym(y)) if x == y => Dim::Sym(x.clone()),
            _ => Dim::unknown(),
        });
    }
    Ok(out)
}

fn product(dims: &[Dim]) -> Dim {
    if let [only] = dims {
        return only.clone();
    }
    dims.iter()
        .try_fold(1usize, |acc, d| d.known().and_then(|d| acc.checked_mul(d)))
        .map_or_else(Dim::unknown, Dim::Known)
}

fn concrete(dims: &[Dim]) -> Option<Vec<usize>> {
    dims.iter().map(Dim::known).collect()
}

/// Output facts of `op` (without values: constant folding is the planner's job).
pub fn infer(op: &Op, inputs: &[Option<&Fact>], n_outputs: usize) -> R<Vec<Fact>> {
    let x = input(inputs, 0);
    let same = |dtype: Option<DType>| -> R<Vec<Fact>> {
        let x = x.clone()?;
        Ok(vec![Fact {
            dtype: dtype.unwrap_or(x.dtype),
            shape: x.shape.clone(),
            value: None,
        }])
    };
    let fact = |dtype, shape: Option<Vec<Dim>>| Fact {
        dtype,
        shape,
        value: None,
    };
    Ok(match op {
        Op::Unary(UnaryOp::Not) => same(Some(DType::Bool))?,
        Op::Unary(_)
        | Op::Clip
        | Op::BatchNorm { .. }
        | Op::InstanceNorm { .. }
        | Op::Softmax { .. }
        | Op::Identity => same(None)?,
        Op::CumSum { .. } => same(None)?,
        Op::Cast { to } => same(Some(*to))?,
        Op::Dropout => {
            let x = x?;
            let mut out = vec![x.clone()];
            out[0].value = None;
            if n_outputs > 1 {
                out.push(fact(DType::Bool, x.shape.clone()));
            }
            out
        }
        Op::Binary(b) => {
            let (a, c) = (x?, input(inputs, 1)?);
            let dtype = if b.returns_bool() { DType::Bool } else { a.dtype };
            let shape = match (shape_of(a), shape_of(c)) {
                (Some(sa), Some(sc)) if *b == BinaryOp::PRelu => {
                    broadcast(sa, sc)?;
                    Some(sa.to_vec())
                }
                (Some(sa), Some(sc)) => Some(broadcast(sa, sc)?),
                _ => None,
            };
            vec![fact(dtype, shape)]
        }
        Op::Variadic { .. } | Op::Where => {
            let facts: Vec<&Fact> = inputs.iter().flatten().copied().collect();
            let first = facts.first().ok_or("no inputs")?;
            let dtype = if matches!(op, Op::Where) {
                input(inputs, 1)?.dtype
            } else {
                first.dtype
            };
            let mut shape = Some(vec![]);
            for f in &facts {
                shape = match (shape, shape_of(f)) {
                    (Some(s), Some(fs)) => Some(broadcast(&s, fs)?),
                    _ => None,
                };
            }
            vec![fact(dtype, shape)]
        }
        Op::Conv(c) => {
            let (x, w) = (x?, input(inputs, 1)?);
            let shape = match (shape_of(x), shape_of(w)) {
                (Some(xs), Some(ws)) => Some(conv_shape(c, xs, ws)?),
                _ => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::FusedConv(f) => {
            let (x, w) = (x?, input(inputs, 1)?);
            let shape = match (shape_of(x), shape_of(w)) {
                (Some(xs), Some(ws)) => Some(conv_shape(&f.conv, xs, ws)?),
                _ => None,
            };
            if f.residual {
                let r = input(inputs, 3)?;
                if let (Some(s), Some(rs)) = (&shape, shape_of(r)) {
                    if broadcast(s, rs)? != *s {
                        return Err(format!("residual shape {rs:?} does not fit the output {s:?}"));
                    }
                }
            }
            vec![fact(x.dtype, shape)]
        }
        Op::ChannelAffine { .. } | Op::SqueezeExcite { .. } => {
            let x = x.clone()?;
            if x.rank().is_some_and(|r| r < 2) {
                return Err("needs an input with a channel axis".into());
            }
            same(None)?
        }
        Op::FusedElementwise { .. } => {
            let x = x.clone()?;
            if let Some(xs) = shape_of(x) {
                for f in inputs.iter().skip(1).flatten() {
                    if let Some(fs) = shape_of(f) {
                        if broadcast(xs, fs)? != xs {
                            return Err(format!("operand shape {fs:?} does not fit {xs:?}"));
                        }
                    }
                }
            }
            same(None)?
        }
        Op::ConvTranspose(c) => {
            let (x, w) = (x?, input(inputs, 1)?);
            let shape = match (shape_of(x), shape_of(w)) {
                (Some(xs), Some(ws)) => Some(conv_transpose_shape(c, xs, ws)?),
                _ => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::LayerNorm { axis, .. } => {
            let x = x?;
            let mut out = vec![fact(x.dtype, x.shape.clone())];
            let stats = match shape_of(x) {
                Some(s) => {
                    let a = norm_axis(*axis, s.len())?;
                    Some(
                        s.iter()
                            .enumerate()
                            .map(|(i, d)| if i < a { d.clone() } else { known(1) })
                            .collect(),
                    )
                }
                None => None,
            };
            for _ in 1..n_outputs {
                out.push(fact(DType::F32, stats.clone()));
            }
            out
        }
        Op::Pool(p) => {
            let x = x?;
            let shape = match shape_of(x) {
                Some(xs) => Some(pool_shape(p, xs)?),
                None => None,
            };
            let mut out = vec![fact(x.dtype, shape.clone())];
            if n_outputs > 1 {
                out.push(fact(DType::I64, shape));
            }
            out
        }
        Op::GlobalPool(_) => {
            let x = x?;
            let shape = shape_of(x).map(|s| {
                s.iter()
                    .enumerate()
                    .map(|(i, d)| if i < 2 { d.clone() } else { known(1) })
                    .collect()
            });
            vec![fact(x.dtype, shape)]
        }
        Op::Reduce(r) => {
            let x = x?;
            let axes = match inputs.get(1).copied().flatten() {
                None => Some(vec![]),
                Some(_) => ints(inputs, 1),
            };
            let shape = match (shape_of(x), axes) {
                (Some(s), Some(axes)) => Some(reduce_shape(s, &axes, r.keepdims, r.noop_with_empty_axes)?),
                (Some(s), None) if r.keepdims => Some(vec![Dim::unknown(); s.len()]),
                _ => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::ArgExtreme { axis, keepdims, .. } => {
            let x = x?;
            let shape = match shape_of(x) {
                Some(s) => Some(reduce_shape(s, &[*axis], *keepdims, false)?),
                None => None,
            };
            vec![fact(DType::I64, shape)]
        }
        Op::Gemm(g) => {
            let (a, b) = (x?, input(inputs, 1)?);
            let shape = match (shape_of(a), shape_of(b)) {
                (Some(sa), Some(sb)) => {
                    if sa.len() != 2 || sb.len() != 2 {
                        return Err(format!(
                            "Gemm needs 2-D inputs, got ranks {} and {}",
                            sa.len(),
                            sb.len()
                        ));
                    }
                    let m = if g.trans_a { &sa[1] } else { &sa[0] };
                    let n = if g.trans_b { &sb[0] } else { &sb[1] };
                    let (ka, kb) = (
                        if g.trans_a { &sa[0] } else { &sa[1] },
                        if g.trans_b { &sb[1] } else { &sb[0] },
                    );
                    if let (Dim::Known(ka), Dim::Known(kb)) = (ka, kb) {
                        if ka != kb {
                            return Err(format!("Gemm inner dimensions differ: {ka} vs {kb}"));
                        }
                    }
                    Some(vec![m.clone(), n.clone()])
                }
                _ => None,
            };
            vec![fact(a.dtype, shape)]
        }
        Op::MatMul => {
            let (a, b) = (x?, input(inputs, 1)?);
            let shape = match (shape_of(a), shape_of(b)) {
                (Some(sa), Some(sb)) => Some(matmul_shape(sa, sb)?),
                _ => None,
            };
            vec![fact(a.dtype, shape)]
        }
        Op::Flatten { axis } => {
            let x = x?;
            let shape = match shape_of(x) {
                Some(s) => {
                    let r = s.len() as i64;
                    if *axis < -r || *axis > r {
                        return Err(format!("Flatten axis {axis} out of range for rank {r}"));
                    }
                    let a = if *axis < 0 {
                        (axis + r) as usize
                    } else {
                        *axis as usize
                    };
                    Some(vec![product(&s[..a]), product(&s[a..])])
                }
                None => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::Reshape { allowzero } => {
            let x = x?;
            let target = ints(inputs, 1);
            let shape = match target {
                Some(t) => Some(reshape_shape(shape_of(x), &t, *allowzero)?),
                None => input(inputs, 1)?
                    .concrete_shape()
                    .map(|s| vec![Dim::unknown(); s.first().copied().unwrap_or(0)]),
            };
            vec![fact(x.dtype, shape)]
        }
        Op::Transpose { perm } => {
            let x = x?;
            let shape = match shape_of(x) {
                Some(s) => {
                    let perm = perm.clone().unwrap_or_else(|| (0..s.len()).rev().collect());
                    let mut seen = vec![false; s.len()];
                    if perm.len() != s.len()
                        || perm
                            .iter()
                            .any(|&p| p >= s.len() || std::mem::replace(&mut seen[p], true))
                    {
                        return Err(format!("perm {perm:?} is not a permutation of rank {}", s.len()));
                    }
                    Some(perm.iter().map(|&p| s[p].clone()).collect())
                }
                None => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::Concat { axis } => {
            let facts: Vec<&Fact> = inputs.iter().flatten().copied().collect();
            let first = facts.first().ok_or("Concat without inputs")?;
            let mut shape: Option<Vec<Dim>> = shape_of(first).map(<[Dim]>::to_vec);
            if let Some(s) = &shape {
                let a = norm_axis(*axis, s.len())?;
                let mut total = Some(0usize);
                let mut out = s.clone();
                for f in &facts {
                    let Some(fs) = shape_of(f) else {
                        shape = None;
                        break;
                    };
                    if fs.len() != s.len() {
                        return Err("Concat inputs differ in rank".into());
                    }
                    for (i, (o, d)) in out.iter_mut().zip(fs).enumerate() {
                        if i != a && matches!(o, Dim::Sym(_)) {
                            *o = d.clone();
                        } else if i != a {
                            if let (Dim::Known(p), Dim::Known(q)) = (&*o, d) {
                                if p != q {
                                    return Err(format!("Concat inputs differ on axis {i}: {p} vs {q}"));
                                }
                            }
                        }
                    }
                    total = total.zip(fs[a].known()).map(|(t, d)| t + d);
                }
                if shape.is_some() {
                    out[a] = total.map_or_else(Dim::unknown, Dim::Known);
                    shape = Some(out);
                }
            }
            vec![fact(first.dtype, shape)]
        }
        Op::Split { axis } => {
            let x = x?;
            let Some(s) = shape_of(x) else {
                return Ok(vec![fact(x.dtype, None); n_outputs]);
            };
            let a = norm_axis(*axis, s.len())?;
            let sizes: Option<Vec<usize>> = match inputs.get(1).copied().flatten() {
                Some(_) => match ints(inputs, 1) {
                    Some(v) => Some(
                        v.iter()
                            .map(|&d| usize::try_from(d).map_err(|_| format!("negative split {d}")))
                            .collect::<R<_>>()?,
                    ),
                    None => None,
                },
                None => s[a].known().map(|d| {
                    let part = d.div_ceil(n_outputs.max(1));
                    (0..n_outputs)
                        .map(|i| part.min(d.saturating_sub(i * part)))
                        .collect()
                }),
            };
            if let (Some(sizes), Some(d)) = (&sizes, s[a].known()) {
                if sizes.len() != n_outputs || sizes.iter().sum::<usize>() != d {
                    return Err(format!(
                        "split sizes {sizes:?} do not cover axis of size {d} in {n_outputs} outputs"
                    ));
                }
            }
            (0..n_outputs)
                .map(|i| {
                    let mut o = s.to_vec();
                    o[a] = sizes.as_ref().map_or_else(Dim::unknown, |v| known(v[i]));
                    fact(x.dtype, Some(o))
                })
                .collect()
        }
        Op::Slice => {
            let x = x?;
            let shape = match (shape_of(x), ints(inputs, 1), ints(inputs, 2)) {
                (Some(s), Some(starts), Some(ends)) => {
                    let axes = if inputs.get(3).copied().flatten().is_some() {
                        ints(inputs, 3)
                    } else {
                        Some((0..starts.len() as i64).collect())
                    };
                    let steps = if inputs.get(4).copied().flatten().is_some() {
                        ints(inputs, 4)
                    } else {
                        Some(vec![1; starts.len()])
                    };
                    match (axes, steps) {
                        (Some(axes), Some(steps)) => Some(slice_shape(s, &starts, &ends, &axes, &steps)?),
                        _ => Some(vec![Dim::unknown(); s.len()]),
                    }
                }
                (Some(s), _, _) => Some(vec![Dim::unknown(); s.len()]),
                _ => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::Gather { axis } => {
            let (x, idx) = (x?, input(inputs, 1)?);
            let shape = match (shape_of(x), shape_of(idx)) {
                (Some(s), Some(is)) => {
                    let a = norm_axis(*axis, s.len())?;
                    Some(s[..a].iter().chain(is).chain(&s[a + 1..]).cloned().collect())
                }
                _ => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::GatherElements { .. } => vec![fact(x?.dtype, input(inputs, 1)?.shape.clone())],
        Op::Shape { start, end } => {
            let x = x?;
            let len = match shape_of(x) {
                Some(s) => {
                    let (a, b) = shape_range(s.len(), *start, *end);
                    Some(vec![known(b.saturating_sub(a))])
                }
                None => Some(vec![Dim::unknown()]),
            };
            vec![fact(DType::I64, len)]
        }
        Op::Size => vec![fact(DType::I64, Some(vec![]))],
        Op::Unsqueeze => {
            let x = x?;
            let shape = match (shape_of(x), ints(inputs, 1)) {
                (Some(s), Some(axes)) => {
                    let r = s.len() + axes.len();
                    let mut norm = axes.iter().map(|&a| norm_axis(a, r)).collect::<R<Vec<_>>>()?;
                    norm.sort_unstable();
                    if norm.windows(2).any(|w| w[0] == w[1]) {
                        return Err(format!("repeated axes {axes:?}"));
                    }
                    let mut rest = s.iter();
                    Some(
                        (0..r)
                            .map(|i| {
                                if norm.binary_search(&i).is_ok() {
                                    known(1)
                                } else {
                                    rest.next().cloned().unwrap_or(known(1))
                                }
                            })
                            .collect(),
                    )
                }
                _ => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::Squeeze => {
            let x = x?;
            let shape = match shape_of(x) {
                Some(s) => match inputs.get(1).copied().flatten() {
                    None => {
                        if s.iter().any(|d| d.known().is_none()) {
                            None
                        } else {
                            Some(s.iter().filter(|d| **d != known(1)).cloned().collect())
                        }
                    }
                    Some(_) => match ints(inputs, 1) {
                        Some(axes) => {
                            let norm = axes
                                .iter()
                                .map(|&a| norm_axis(a, s.len()))
                                .collect::<R<Vec<_>>>()?;
                            for &a in &norm {
                                if let Dim::Known(d) = s[a] {
                                    if d != 1 {
                                        return Err(format!("cannot squeeze axis {a} of size {d}"));
                                    }
                                }
                            }
                            Some(
                                s.iter()
                                    .enumerate()
                                    .filter(|(i, _)| !norm.contains(i))
                                    .map(|(_, d)| d.clone())
                                    .collect(),
                            )
                        }
                        None => None,
                    },
                },
                None => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::Pad { .. } => {
            let x = x?;
            let shape = match (shape_of(x), ints(inputs, 1)) {
                (Some(s), Some(pads)) => {
                    let r = s.len();
                    let axes: Vec<usize> = match inputs.get(3).copied().flatten() {
                        Some(_) => match ints(inputs, 3) {
                            Some(a) => a.iter().map(|&a| norm_axis(a, r)).collect::<R<_>>()?,
                            None => return Ok(vec![fact(x.dtype, Some(vec![Dim::unknown(); r]))]),
                        },
                        None => (0..r).collect(),
                    };
                    if pads.len() != 2 * axes.len() {
                        return Err(format!("pads {pads:?} do not match {} axes", axes.len()));
                    }
                    let mut out = s.to_vec();
                    for (k, &a) in axes.iter().enumerate() {
                        out[a] = match s[a].known() {
                            Some(d) => {
                                let n = d as i64 + pads[k] + pads[k + axes.len()];
                                known(usize::try_from(n).map_err(|_| format!("pads make axis {a} negative"))?)
                            }
                            None => Dim::unknown(),
                        };
                    }
                    Some(out)
                }
                _ => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::Expand => {
            let x = x?;
            let shape = match (shape_of(x), ints(inputs, 1)) {
                (Some(s), Some(t)) => {
                    let t = t
                        .iter()
                        .map(|&d| {
                            usize::try_from(d)
                                .map(known)
                                .map_err(|_| format!("negative dim {d}"))
                        })
                        .collect::<R<Vec<_>>>()?;
                    Some(broadcast(s, &t)?)
                }
                _ => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::Tile => {
            let x = x?;
            let shape = match (shape_of(x), ints(inputs, 1)) {
                (Some(s), Some(reps)) => {
                    if reps.len() != s.len() {
                        return Err("Tile repeats length differs from rank".into());
                    }
                    Some(
                        s.iter()
                            .zip(&reps)
                            .map(|(d, &r)| match (d.known(), usize::try_from(r)) {
                                (Some(d), Ok(r)) => known(d * r),
                                _ => Dim::unknown(),
                            })
                            .collect(),
                    )
                }
                _ => None,
            };
            vec![fact(x.dtype, shape)]
        }
        Op::ConstantOfShape { value } => {
            let shape = match ints(inputs, 0) {
                Some(t) => Some(
                    t.iter()
                        .map(|&d| {
                            usize::try_from(d)
                                .map(known)
                                .map_err(|_| format!("negative dim {d}"))
                        })
                        .collect::<R<Vec<_>>>()?,
                ),
                None => None,
            };
            vec![fact(value.dtype(), shape)]
        }
        Op::Range => {
            let start = x?;
            let len = match (&start.value, &input(inputs, 1)?.value, &input(inputs, 2)?.value) {
                (Some(a), Some(b), Some(c)) => {
                    let (a, b, c) = (a.to_f32_vec(), b.to_f32_vec(), c.to_f32_vec());
                    let (a, b, c) = (
                        a.first().copied().unwrap_or(0.0) as f64,
                        b.first().copied().unwrap_or(0.0) as f64,
                        c.first().copied().unwrap_or(0.0) as f64,
                    );
                    if c == 0.0 {
                        return Err("Range delta is zero".into());
                    }
                    known(((b - a) / c).ceil().max(0.0) as usize)
                }
                _ => Dim::unknown(),
            };
            vec![fact(start.dtype, Some(vec![len]))]
        }
        Op::Resize(r) => {
            let x = x?;
            let shape = shape_of(x)
                .and_then(|s| resize_shape(r, s, inputs).transpose())
                .transpose()?;
            vec![fact(x.dtype, shape)]
        }
        Op::DepthToSpace { blocksize: b, .. } | Op::SpaceToDepth { blocksize: b } => {
            let x = x?;
            let shape = match shape_of(x).and_then(concrete) {
                Some(s) if s.len() == 4 => {
                    let b2 = b * b;
                    Some(
                        if matches!(op, Op::DepthToSpace { .. }) {
                            if s[1] % b2 != 0 {
                                return Err(format!("channels {} not divisible by blocksize² {b2}", s[1]));
                            }
                            vec![s[0], s[1] / b2, s[2] * b, s[3] * b]
                        } else {
                            if s[2] % b != 0 || s[3] % b != 0 {
                                return Err(format!(
                                    "spatial dims {:?} not divisible by blocksize {b}",
                                    &s[2..]
                                ));
                            }
                            vec![s[0], s[1] * b2, s[2] / b, s[3] / b]
                        }
                        .into_iter()
                        .map(known)
                        .collect(),
                    )
                }
                Some(s) => return Err(format!("expected a 4-D input, got rank {}", s.len())),
                None => shape_of(x).map(|s| vec![Dim::unknown(); s.len()]),
            };
            vec![fact(x.dtype, shape)]
        }
        Op::TopK { axis, .. } => {
            let x = x?;
            let shape = match (shape_of(x), ints(inputs, 1)) {
                (Some(s), Some(k)) => {
                    let a = norm_axis(*axis, s.len())?;
                    let k = k.first().copied().ok_or("TopK k is empty")?;
                    let k = usize::try_from(k).map_err(|_| format!("negative k {k}"))?;
                    if let Some(d) = s[a].known() {
                        if k > d {
                            return Err(format!("k = {k} exceeds axis size {d}"));
                        }
                    }
                    let mut o = s.to_vec();
                    o[a] = known(k);
                    Some(o)
                }
                _ => None,
            };
            vec![fact(x.dtype, shape.clone()), fact(DType::I64, shape)]
        }
    })
}

fn conv_shape(c: &Conv, xs: &[Dim], ws: &[Dim]) -> R<Vec<Dim>> {
    let n = c.window.kernel_shape.len();
    if xs.len() != n + 2 || ws.len() != n + 2 {
        return Err(format!(
            "Conv with {n} spatial axes got input rank {} and weight rank {}",
            xs.len(),
            ws.len()
        ));
    }
    if let (Dim::Known(ci), Dim::Known(wc)) = (&xs[1], &ws[1]) {
        if *ci != wc * c.group {
            return Err(format!(
                "input has {ci} channels, weight expects {wc} × group {}",
                c.group
            ));
        }
    }
    if let Dim::Known(m) = ws[0] {
        if m % c.group != 0 {
            return Err(format!("{m} output channels not divisible by group {}", c.group));
        }
    }
    if let Some(k) = concrete(&ws[2..]) {
        if k != c.window.kernel_shape {
            return Err(format!(
                "kernel_shape {:?} differs from weight shape {k:?}",
                c.window.kernel_shape
            ));
        }
    }
    let spatial = match concrete(&xs[2..]) {
        Some(input) => {
            let kernel = concrete(&ws[2..]).unwrap_or_else(|| c.window.kernel_shape.clone());
            window::output_spatial(&c.window, &input, &kernel, false)
                .map_err(window_message)?
                .into_iter()
                .map(known)
                .collect()
        }
        None => vec![Dim::unknown(); n],
    };
    Ok([xs[0].clone(), ws[0].clone()]
        .into_iter()
        .chain(spatial)
        .collect())
}

fn conv_transpose_shape(c: &ConvTranspose, xs: &[Dim], ws: &[Dim]) -> R<Vec<Dim>> {
    let w = &c.window;
    let n = w.kernel_shape.len();
    if xs.len() != n + 2 || ws.len() != n + 2 {
        return Err(format!(
            "ConvTranspose with {n} spatial axes got ranks {} and {}",
            xs.len(),
            ws.len()
        ));
    }
    let channels = ws[1].known().map_or_else(Dim::unknown, |m| known(m * c.group));
    let spatial = match concrete(&xs[2..]) {
        Some(input) => {
            let kernel = concrete(&ws[2..]).unwrap_or_else(|| w.kernel_shape.clone());
            let (_, output) = window::conv_transpose_geometry(c, &input, &kernel).map_err(window_message)?;
            output.into_iter().map(known).collect()
        }
        // The output size does not depend on the input when the model states it.
        None if c.output_shape.len() >= n => c.output_shape[c.output_shape.len() - n..]
            .iter()
            .map(|&d| known(d))
            .collect(),
        None => vec![Dim::unknown(); n],
    };
    Ok([xs[0].clone(), channels].into_iter().chain(spatial).collect())
}

/// The window module's errors, as shape inference's plain messages.
fn window_message(e: crate::error::Error) -> String {
    match e {
        crate::error::Error::Shape { message, .. } => message,
        other => other.to_string(),
    }
}

fn pool_shape(p: &Pool, xs: &[Dim]) -> R<Vec<Dim>> {
    let n = p.window.kernel_shape.len();
    if xs.len() != n + 2 {
        return Err(format!("pool with {n} spatial axes got input rank {}", xs.len()));
    }
    let spatial = match concrete(&xs[2..]) {
        Some(input) => window::output_spatial(&p.window, &input, &p.window.kernel_shape, p.ceil_mode)
            .map_err(window_message)?
            .into_iter()
            .map(known)
            .collect(),
        None => vec![Dim::unknown(); n],
    };
    Ok(xs[..2].iter().cloned().chain(spatial).collect())
}

fn reduce_shape(s: &[Dim], axes: &[i64], keepdims: bool, noop_with_empty_axes: bool) -> R<Vec<Dim>> {
    if axes.is_empty() && noop_with_empty_axes {
        return Ok(s.to_vec());
    }
    let norm: Vec<usize> = if axes.is_empty() {
        (0..s.len()).collect()
    } else {
        axes.iter().map(|&a| norm_axis(a, s.len())).collect::<R<_>>()?
    };
    Ok(s.iter()
        .enumerate()
        .filter_map(|(i, d)| match (norm.contains(&i), keepdims) {
            (true, true) => Some(known(1)),
            (true, false) => None,
            (false, _) => Some(d.clone()),
        })
        .collect())
}

fn matmul_shape(a: &[Dim], b: &[Dim]) -> R<Vec<Dim>> {
    if a.is_empty() || b.is_empty() {
        return Err("MatMul inputs must have rank ≥ 1".into());
    }
    let a2: Vec<Dim> = if a.len() == 1 {
        vec![known(1), a[0].clone()]
    } else {
        a.to_vec()
    };
    let b2: Vec<Dim> = if b.len() == 1 {
        vec![b[0].clone(), known(1)]
    } else {
        b.to_vec()
    };
    let (ka, kb) = (&a2[a2.len() - 1], &b2[b2.len() - 2]);
    if let (Dim::Known(x), Dim::Known(y)) = (ka, kb) {
        if x != y {
            return Err(format!("MatMul inner dimensions differ: {x} vs {y}"));
        }
    }
    let mut out = broadcast(&a2[..a2.len() - 2], &b2[..b2.len() - 2])?;
    if a.len() > 1 {
        out.push(a2[a2.len() - 2].clone());
    }
    if b.len() > 1 {
        out.push(b2[b2.len() - 1].clone());
    }
    Ok(out)
}

fn reshape_shape(input: Option<&[Dim]>, target: &[i64], allowzero: bool) -> R<Vec<Dim>> {
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                Dim::unknown()
            }
            -1 => return Err("more than one -1 in Reshape target".into()),
            0 if !allowzero => match input.and_then(|s| s.get(i)) {
                Some(d) => d.clone(),
                None if input.is_none() => Dim::unknown(),
                None => return Err(format!("Reshape target copies dim {i}, which the input lacks")),
            },
            t if t < 0 => return Err(format!("invalid Reshape target dim {t}")),
            t => known(usize::try_from(t).map_err(|_| format!("Reshape dim {t} too large"))?),
        });
    }
    let total = input.map(product);
    match (infer_at, total) {
        (Some(i), Some(Dim::Known(total))) => {
            let rest = out
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .try_fold(1usize, |acc, (_, d)| d.known().map(|d| acc * d));
            if let Some(rest) = rest {
                if rest == 0 || total % rest != 0 {
                    return Err(format!("cannot reshape {total} elements into {target:?}"));
                }
                out[i] = known(total / rest);
            }
        }
        (None, Some(Dim::Known(total))) => {
            if let Some(n) = concrete(&out).map(|o| o.iter().product::<usize>()) {
                if n != total {
                    return Err(format!("cannot reshape {total} elements into {target:?}"));
                }
            }
        }
        // With a symbolic batch, `[-1, C]` keeps the symbol when the other dims match.
        (Some(i), _) => {
            if let Some(s) = input {
                if s.len() == out.len() && s.iter().enumerate().all(|(j, d)| j == i || *d == out[j]) {
                    out[i] = s[i].clone();
                }
            }
        }
        _ => {}
    }
    Ok(out)
}

/// Clamped `[start, end)` of `Shape`'s optional slicing (opset 15).
pub fn shape_range(rank: usize, start: i64, end: Option<i64>) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let (a, b) = (clamp(start), clamp(end.unwrap_or(r)));
    (a, b.max(a))
}

/// Resolved `(start, step, count)` per axis for Slice, following the ONNX clamping rules.
pub fn slice_params(dim: usize, start: i64, end: i64, step: i64) -> R<(i64, i64, usize)> {
    if step == 0 {
        return Err("Slice step is 0".into());
    }
    let d = dim as i64;
    let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (norm(start), norm(end));
    let (s, e) = if step > 0 {
        (s.clamp(0, d), e.clamp(0, d))
    } else {
        (s.clamp(0, d - 1), e.clamp(-1, d - 1))
    };
    let (span, stride) = if step > 0 {
        ((e - s).max(0) as u64, step.unsigned_abs())
    } else {
        ((s - e).max(0) as u64, step.unsigned_abs())
    };
    let count = span.div_ceil(stride);
    Ok((s, step, count as usize))
}

fn slice_shape(s: &[Dim], starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64]) -> R<Vec<Dim>> {
    if starts.len() != ends.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("Slice starts/ends/axes/steps differ in length".into());
    }
    let mut out = s.to_vec();
    let mut seen = vec![false; s.len()];
    for k in 0..starts.len() {
        let a = norm_axis(axes[k], s.len())?;
        if std::mem::replace(&mut seen[a], true) {
            return Err(format!("Slice axis {a} repeated"));
        }
        out[a] = match s[a].known() {
            Some(d) => known(slice_params(d, starts[k], ends[k], steps[k])?.2),
            None => Dim::unknown(),
        };
    }
    Ok(out)
}

fn resize_shape(r: &Resize, s: &[Dim], inputs: &[Option<&Fact>]) -> R<Option<Vec<Dim>>> {
    let rank = s.len();
    let axes: Vec<usize> = if r.axes.is_empty() {
        (0..rank).collect()
    } else {
        r.axes.iter().map(|&a| norm_axis(a, rank)).collect::<R<_>>()?
    };
    let Some(input) = concrete(s) else {
        return Ok(Some(vec![Dim::unknown(); rank]));
    };
    let sizes = inputs
        .get(3)
        .copied()
        .flatten()
        .and_then(|f| f.value.as_ref())
        .and_then(|t| t.to_i64_vec())
        .filter(|v| !v.is_empty());
    let scales = inputs
        .get(2)
        .copied()
        .flatten()
        .and_then(|f| f.value.as_ref())
        .map(|t| t.to_f32_vec())
        .filter(|v| !v.is_empty());
    let mut out = input.clone();
    if let Some(sizes) = sizes {
        if sizes.len() != axes.len() {
            return Err(format!("Resize sizes {sizes:?} do not match {} axes", axes.len()));
        }
        let sizes = sizes
            .iter()
            .map(|&v| usize::try_from(v).map_err(|_| format!("negative size {v}")))
            .collect::<R<Vec<_>>>()?;
        match r.keep_aspect_ratio {
            KeepAspect::Stretch => {
                for (k, &a) in axes.iter().enumerate() {
                    out[a] = sizes[k];
                }
            }
            policy => {
                let ratios = axes
                    .iter()
                    .enumerate()
                    .map(|(k, &a)| sizes[k] as f32 / input[a] as f32);
                let scale = if policy == KeepAspect::NotLarger {
                    ratios.fold(f32::INFINITY, f32::min)
                } else {
                    ratios.fold(0.0, f32::max)
                };
                for &a in &axes {
                    out[a] = (scale * input[a] as f32 + 0.5).floor() as usize;
                }
            }
        }
    } else if let Some(scales) = scales {
        if scales.len() != axes.len() {
            return Err(format!(
                "Resize scales {scales:?} do not match {} axes",
                axes.len()
            ));
        }
        for (k, &a) in axes.iter().enumerate() {
            if scales[k].is_nan() || scales[k] <= 0.0 {
                return Err(format!("Resize scale {} must be positive", scales[k]));
            }
            out[a] = (input[a] as f32 * scales[k]).floor() as usize;
        }
    } else {
        return Ok(Some(vec![Dim::unknown(); rank]));
    }
    Ok(Some(out.into_iter().map(known).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(s: &str) -> Dim {
        Dim::Sym(s.into())
    }

    #[test]
    fn broadcasting_keeps_the_batch_symbol() {
        let a = vec![sym("batch"), known(8), known(1), known(1)];
        let b = vec![known(8), known(4), known(4)];
        assert_eq!(
            broadcast(&a, &b).unwrap(),
            vec![sym("batch"), known(8), known(4), known(4)]
        );
        assert!(broadcast(&[known(3)], &[known(4)]).is_err());
    }

    #[test]
    fn reshape_infers_minus_one_and_keeps_symbols() {
        let s = vec![sym("batch"), known(512), known(1), known(1)];
        let out = reshape_shape(Some(&s), &[0, -1], false).unwrap();
        assert_eq!(out, vec![sym("batch"), Dim::unknown()]);
        let s = vec![known(2), known(3), known(4)];
        assert_eq!(
            reshape_shape(Some(&s), &[-1, 4], false).unwrap(),
            vec![known(6), known(4)]
        );
        assert!(reshape_shape(Some(&s), &[5, -1], false).is_err());
    }

    #[test]
    fn slice_clamps_like_onnx() {
        assert_eq!(slice_params(10, 0, i64::MAX, 1).unwrap(), (0, 1, 10));
        assert_eq!(slice_params(10, -1, i64::MIN, -1).unwrap(), (9, -1, 10));
        assert_eq!(slice_params(10, 20, 30, 1).unwrap().2, 0);
        assert!(slice_params(10, 0, 1, 0).is_err());
    }
}
