//! `Op::Where`: `out = cond ? x : y` with three-way broadcasting, for every dtype.
//! The choice never looks at the values, so elements are moved as plain words of
//! their size (1, 2, 4 or 8 bytes): one loop per size serves all thirteen dtypes.

use super::loops::{bad_dtypes, out0, single_output};
use crate::backend::cpu::kernel::{required, required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::broadcast::Broadcast;
use crate::backend::cpu::kernels::numeric::par_chunks;
use crate::error::{Error, Result};
use crate::tensor::{DType, Slice, View, ViewMut};

const NAME: &str = "Where";

pub fn prepare(inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    let c = required_desc(inputs, 0)?;
    let x = required_desc(inputs, 1)?;
    let y = required_desc(inputs, 2)?;
    let out = single_output(NAME, outputs)?;
    if c.dtype != DType::Bool || x.dtype != y.dtype || out.dtype != x.dtype {
        return Err(bad_dtypes(NAME, &[c.dtype, x.dtype, y.dtype, out.dtype]));
    }
    let plan = Broadcast::new(NAME, &out.shape, [c.shape, x.shape, y.shape])?;
    Ok(Box::new(Where { plan }))
}

struct Where {
    plan: Broadcast<3>,
}

/// Reinterprets a typed slice's bytes as words of the same size. Cannot fail for a
/// slice that came from a typed one, but bytemuck checks alignment anyway.
fn words<T: bytemuck::Pod>(s: Slice<'_>) -> Result<&[T]> {
    bytemuck::try_cast_slice(s.as_bytes()).map_err(|e| Error::shape(NAME, format!("input layout: {e}")))
}

impl Kernel for Where {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let c = required(inputs, 0)?;
        let x = required(inputs, 1)?;
        let y = required(inputs, 2)?;
        let out = out0(NAME, outputs)?;
        let Slice::Bool(c) = c.data else {
            return Err(bad_dtypes(NAME, &[c.dtype()]));
        };
        let size = out.data.dtype().size();
        if x.dtype() != out.data.dtype() || y.dtype() != out.data.dtype() {
            return Err(bad_dtypes(NAME, &[x.dtype(), y.dtype(), out.data.dtype()]));
        }
        let bytes = out.data.as_bytes_mut();
        let out_err = |e: bytemuck::PodCastError| Error::shape(NAME, format!("output layout: {e}"));
        let p = &self.plan;
        match size {
            1 => select(p, c, words::<u8>(x.data)?, words(y.data)?, bytes),
            2 => select(
                p,
                c,
                words::<u16>(x.data)?,
                words(y.data)?,
                bytemuck::try_cast_slice_mut(bytes).map_err(out_err)?,
            ),
            4 => select(
                p,
                c,
                words::<u32>(x.data)?,
                words(y.data)?,
                bytemuck::try_cast_slice_mut(bytes).map_err(out_err)?,
            ),
            _ => select(
                p,
                c,
                words::<u64>(x.data)?,
                words(y.data)?,
                bytemuck::try_cast_slice_mut(bytes).map_err(out_err)?,
            ),
        }
    }

    fn label(&self) -> &'static str {
        NAME
    }
}

fn select<T: Copy + Send + Sync>(p: &Broadcast<3>, c: &[u8], x: &[T], y: &[T], out: &mut [T]) -> Result<()> {
    p.check_lens(NAME, [c.len(), x.len(), y.len()], out.len())?;
    let [sc, sx, sy] = p.run_strides();
    par_chunks(out, 1, 1, |start, chunk| {
        p.for_each_run(start, start + chunk.len(), |o, [ic, ix, iy], len| {
            let dst = &mut chunk[o - start..o - start + len];
            if sc == 1 && sx == 1 && sy == 1 {
                let srcs = c[ic..ic + len].iter().zip(&x[ix..ix + len]).zip(&y[iy..iy + len]);
                for (d, ((&c, &a), &b)) in dst.iter_mut().zip(srcs) {
                    *d = if c != 0 { a } else { b };
                }
            } else {
                for (i, d) in dst.iter_mut().enumerate() {
                    *d = if c[ic + i * sc] != 0 {
                        x[ix + i * sx]
                    } else {
                        y[iy + i * sy]
                    };
                }
            }
        });
    });
    Ok(())
}
