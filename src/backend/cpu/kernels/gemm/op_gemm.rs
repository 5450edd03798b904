//! The ONNX `Gemm` op: `Y = alpha * op(A) * op(B) + beta * C`, C broadcast to `[M, N]`.

use super::driver::{gemm, LhsSource, RhsSource};
use super::epilogue::Epilogue;
use super::mat::MatRef;
use super::pack::{PackedA, PackedB};
use crate::backend::cpu::kernel::{
    multiply_add_flops, required, required_desc, InputDesc, Kernel, OutputDesc,
};
use crate::backend::cpu::kernels::float_io::{const_f32, expect_f32, numel, output};
use crate::error::{Error, Result};
use crate::ir::ops::Gemm;
use crate::tensor::{View, ViewMut};

const NAME: &str = "Gemm";

/// How C enters the result.
#[derive(Debug)]
enum Addend {
    None,
    /// One value per row (C is `[M, 1]`), already scaled by beta when constant.
    Row(Bias),
    /// One value per column (C is `[N]` or `[1, N]`).
    Col(Bias),
    /// Anything else: Y is filled with `beta * C` broadcast, then accumulated into.
    Fill {
        rows: usize,
        cols: usize,
    },
}

#[derive(Debug)]
enum Bias {
    Const(Vec<f32>),
    /// Read input 2 at run time (only when `beta == 1`, so no scaling is needed).
    Input,
}

struct GemmKernel {
    m: usize,
    n: usize,
    k: usize,
    g: Gemm,
    a_packed: Option<PackedA>,
    b_packed: Option<PackedB>,
    addend: Addend,
}

pub(super) fn prepare(
    g: &Gemm,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    expect_f32(NAME, inputs, &[0, 1, 2], outputs)?;
    let (a, b) = (required_desc(inputs, 0)?, required_desc(inputs, 1)?);
    let (&[ar, ac], &[br, bc]) = (a.shape, b.shape) else {
        return Err(Error::shape(
            NAME,
            format!("A {:?} and B {:?} must be 2-D", a.shape, b.shape),
        ));
    };
    let (m, k) = if g.trans_a { (ac, ar) } else { (ar, ac) };
    let (kb, n) = if g.trans_b { (bc, br) } else { (br, bc) };
    if k != kb || output(NAME, outputs, 0)?.shape != [m, n] {
        return Err(Error::shape(
            NAME,
            format!(
                "A {:?} and B {:?} do not give output {:?}",
                a.shape, b.shape, outputs[0].shape
            ),
        ));
    }
    for shape in [a.shape, b.shape, &outputs[0].shape] {
        numel(NAME, shape)?;
    }
    let a_packed = match const_f32(&a) {
        Some(data) => Some(PackedA::new(lhs_view(data, m, k, g.trans_a)?)),
        None => None,
    };
    let b_packed = match const_f32(&b) {
        Some(data) => Some(PackedB::new(rhs_view(data, k, n, g.trans_b)?)),
        None => None,
    };
    let addend = match inputs.get(2).copied().flatten() {
        None => Addend::None,
        Some(c) => addend(c, m, n, g.beta)?,
    };
    Ok(Box::new(GemmKernel {
        m,
        n,
        k,
        g: *g,
        a_packed,
        b_packed,
        addend,
    }))
}

fn lhs_view(data: &[f32], m: usize, k: usize, trans: bool) -> Result<MatRef<'_>> {
    if trans {
        MatRef::new(data, m, k, 1, m)
    } else {
        MatRef::row_major(data, m, k)
    }
}

fn rhs_view(data: &[f32], k: usize, n: usize, trans: bool) -> Result<MatRef<'_>> {
    if trans {
        MatRef::new(data, k, n, 1, k)
    } else {
        MatRef::row_major(data, k, n)
    }
}

/// Picks the cheapest way to add `beta * C` for C of this shape.
fn addend(c: InputDesc<'_>, m: usize, n: usize, beta: f32) -> Result<Addend> {
    let dims: (usize, usize) = match *c.shape {
        [] => (1, 1),
        [cols] => (1, cols),
        [rows, cols] => (rows, cols),
        _ => return Err(Error::shape(NAME, format!("C {:?} has rank > 2", c.shape))),
    };
    if !(dims.0 == 1 || dims.0 == m) || !(dims.1 == 1 || dims.1 == n) {
        return Err(Error::shape(
            NAME,
            format!("C {:?} does not broadcast to [{m}, {n}]", c.shape),
        ));
    }
    let bias = || match const_f32(&c) {
        Some(v) => Some(Bias::Const(v.iter().map(|&x| beta * x).collect())),
        None if beta == 1.0 => Some(Bias::Input),
        None => None,
    };
    // Degenerate sizes (m or n == 1) match several cases; any of them is correct.
    let per_row = dims == (m, 1) && m > 1;
    let per_col = dims == (1, n) && n > 1;
    Ok(match (per_row, per_col) {
        (true, _) => bias().map_or(Addend::Fill { rows: m, cols: 1 }, Addend::Row),
        (_, true) => bias().map_or(Addend::Fill { rows: 1, cols: n }, Addend::Col),
        _ => Addend::Fill {
            rows: dims.0,
            cols: dims.1,
        },
    })
}

impl Kernel for GemmKernel {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let (m, n, k) = (self.m, self.n, self.k);
        let y = outputs
            .get_mut(0)
            .ok_or_else(|| Error::shape(NAME, "missing output"))?
            .typed::<f32>()?;
        let a = match &self.a_packed {
            Some(p) => LhsSource::Packed(p),
            None => LhsSource::Mat(lhs_view(
                required(inputs, 0)?.typed::<f32>()?,
                m,
                k,
                self.g.trans_a,
            )?),
        };
        let b = match &self.b_packed {
            Some(p) => RhsSource::Packed(p),
            None => RhsSource::Mat(rhs_view(
                required(inputs, 1)?.typed::<f32>()?,
                k,
                n,
                self.g.trans_b,
            )?),
        };
        let c_input = || -> Result<&[f32]> { required(inputs, 2)?.typed::<f32>() };
        let mut epilogue = Epilogue::default();
        let mut beta = 0.0;
        match &self.addend {
            Addend::None => {}
            Addend::Row(Bias::Const(v)) => epilogue.row_bias = Some(v),
            Addend::Col(Bias::Const(v)) => epilogue.col_bias = Some(v),
            Addend::Row(Bias::Input) => epilogue.row_bias = Some(c_input()?),
            Addend::Col(Bias::Input) => epilogue.col_bias = Some(c_input()?),
            &Addend::Fill { rows, cols } => {
                fill_broadcast(y, c_input()?, rows, cols, m, n, self.g.beta)?;
                beta = 1.0;
            }
        }
        gemm(a, b, y, n, self.g.alpha, beta, &epilogue, true)
    }

    fn flops(&self) -> Option<u64> {
        multiply_add_flops(&[self.m, self.n, self.k])
    }

    fn label(&self) -> &'static str {
        match (&self.a_packed, &self.b_packed) {
            (None, Some(_)) => "gemm(packed B)",
            (Some(_), _) => "gemm(packed A)",
            _ => "gemm",
        }
    }
}

/// `y[i, j] = beta * c[i or 0, j or 0]` for a `rows x cols` C broadcast to `m x n`.
fn fill_broadcast(
    y: &mut [f32],
    c: &[f32],
    rows: usize,
    cols: usize,
    m: usize,
    n: usize,
    beta: f32,
) -> Result<()> {
    if c.len() != rows * cols || y.len() < m * n {
        return Err(Error::shape(NAME, "C or Y has an unexpected size"));
    }
    if n == 0 {
        return Ok(());
    }
    for (i, row) in y.chunks_exact_mut(n).take(m).enumerate() {
        let src = &c[if rows == 1 { 0 } else { i * cols }..][..cols];
        if cols == 1 {
            row.fill(beta * src[0]);
        } else {
            row.iter_mut().zip(src).for_each(|(d, &s)| *d = beta * s);
        }
    }
    Ok(())
}
