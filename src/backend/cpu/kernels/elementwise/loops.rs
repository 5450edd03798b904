//! The loops every elementwise kernel is built from, and their shared checks.
//!
//! Each loop takes the per-element function as a generic closure, so that for a given
//! op and dtype it compiles to one tight loop over contiguous memory that LLVM can
//! vectorize; the output is split across threads by [`par_chunks`].

use crate::backend::cpu::kernel::OutputDesc;
use crate::backend::cpu::kernels::broadcast::Broadcast;
use crate::backend::cpu::kernels::numeric::{par_chunks, FloatStore};
use crate::error::{Error, Result};
use crate::tensor::{DType, ViewMut};

/// Relative cost of a transcendental function against an add, for threading decisions.
pub const COST_TRANSCENDENTAL: usize = 8;

/// The one output descriptor of a single-output op.
pub fn single_output<'a>(node: &str, outputs: &'a [OutputDesc]) -> Result<&'a OutputDesc> {
    match outputs {
        [o] => Ok(o),
        _ => Err(Error::shape(
            node,
            format!("expected 1 output, got {}", outputs.len()),
        )),
    }
}

/// The first output view at run time.
pub fn out0<'a, 'b>(node: &str, outputs: &'b mut [ViewMut<'a>]) -> Result<&'b mut ViewMut<'a>> {
    outputs
        .first_mut()
        .ok_or_else(|| Error::shape(node, "missing output buffer"))
}

/// An error for a dtype combination an op does not support.
pub fn bad_dtypes(node: &str, dtypes: &[DType]) -> Error {
    let names: Vec<&str> = dtypes.iter().map(|d| d.name()).collect();
    Error::shape(
        node,
        format!("unsupported dtype combination ({})", names.join(", ")),
    )
}

/// Fails unless `got == want`.
pub fn expect_len(node: &str, what: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        return Err(Error::shape(
            node,
            format!("{what} has {got} elements, expected {want}"),
        ));
    }
    Ok(())
}

/// `y[i] = f(x[i])`.
pub fn map<S: Copy + Sync, D: Send>(
    node: &str,
    x: &[S],
    y: &mut [D],
    cost: usize,
    f: impl Fn(S) -> D + Sync + Send,
) -> Result<()> {
    expect_len(node, "output", y.len(), x.len())?;
    par_chunks(y, 1, cost, |start, chunk| {
        let src = &x[start..start + chunk.len()];
        for (o, &v) in chunk.iter_mut().zip(src) {
            *o = f(v);
        }
    });
    Ok(())
}

/// `y[i] = f(x[i])` computed in `T`'s compute type (f16 and bf16 go through f32).
pub fn fmap<T: FloatStore>(
    node: &str,
    x: &[T],
    y: &mut [T],
    cost: usize,
    f: impl Fn(T::C) -> T::C + Sync + Send,
) -> Result<()> {
    map(node, x, y, cost, |v: T| T::store(f(v.load())))
}

/// `out[i] = f(a[i'], b[i''])` with `a` and `b` broadcast to `out` by `plan`.
pub fn zip<A: Copy + Sync, B: Copy + Sync, O: Copy + Send>(
    node: &str,
    plan: &Broadcast<2>,
    a: &[A],
    b: &[B],
    out: &mut [O],
    cost: usize,
    f: impl Fn(A, B) -> O + Sync + Send,
) -> Result<()> {
    plan.check_lens(node, [a.len(), b.len()], out.len())?;
    let [sa, sb] = plan.run_strides();
    par_chunks(out, 1, cost, |start, chunk| {
        plan.for_each_run(start, start + chunk.len(), |o, [ia, ib], len| {
            let dst = &mut chunk[o - start..o - start + len];
            // One loop per run shape: same-shape, scalar on either side, or both scalar.
            match (sa, sb) {
                (0, 0) => dst.fill(f(a[ia], b[ib])),
                (0, _) => {
                    let x = a[ia];
                    for (d, &y) in dst.iter_mut().zip(&b[ib..ib + len]) {
                        *d = f(x, y);
                    }
                }
                (_, 0) => {
                    let y = b[ib];
                    for (d, &x) in dst.iter_mut().zip(&a[ia..ia + len]) {
                        *d = f(x, y);
                    }
                }
                _ => {
                    for ((d, &x), &y) in dst.iter_mut().zip(&a[ia..ia + len]).zip(&b[ib..ib + len]) {
                        *d = f(x, y);
                    }
                }
            }
        });
    });
    Ok(())
}

/// `out[i] = f(out[i], x[i'])` with `x` broadcast to `out` by `plan`.
pub fn accumulate<T: Copy + Send + Sync>(
    node: &str,
    plan: &Broadcast<1>,
    x: &[T],
    out: &mut [T],
    f: impl Fn(T, T) -> T + Sync + Send,
) -> Result<()> {
    plan.check_lens(node, [x.len()], out.len())?;
    let [s] = plan.run_strides();
    par_chunks(out, 1, 1, |start, chunk| {
        plan.for_each_run(start, start + chunk.len(), |o, [i], len| {
            let dst = &mut chunk[o - start..o - start + len];
            if s == 0 {
                let v = x[i];
                for d in dst.iter_mut() {
                    *d = f(*d, v);
                }
            } else {
                for (d, &v) in dst.iter_mut().zip(&x[i..i + len]) {
                    *d = f(*d, v);
                }
            }
        });
    });
    Ok(())
}

/// `out[i] = x[i']`: `x` broadcast (expanded) to `out` by `plan`.
pub fn expand<T: Copy + Send + Sync>(node: &str, plan: &Broadcast<1>, x: &[T], out: &mut [T]) -> Result<()> {
    plan.check_lens(node, [x.len()], out.len())?;
    let [s] = plan.run_strides();
    par_chunks(out, 1, 1, |start, chunk| {
        plan.for_each_run(start, start + chunk.len(), |o, [i], len| {
            let dst = &mut chunk[o - start..o - start + len];
            if s == 0 {
                dst.fill(x[i]);
            } else {
                dst.copy_from_slice(&x[i..i + len]);
            }
        });
    });
    Ok(())
}
