//! Shape and Size: both depend only on the input's shape, which is fixed when the
//! kernel is prepared, so running just writes the precomputed int64 values.

use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::backend::cpu::kernels::layout::params::{numel, output};
use crate::error::{Error, Result};
use crate::tensor::{DType, View, ViewMut};

/// Prepares `Op::Shape { start, end }` (opset 15 slicing: negative values count from
/// the end, out-of-range values are clamped).
pub(crate) fn prepare_shape(
    start: i64,
    end: Option<i64>,
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let r = x.shape.len() as i64;
    let clamp = |v: i64| (if v < 0 { v.saturating_add(r) } else { v }).clamp(0, r) as usize;
    let (s, e) = (clamp(start), clamp(end.unwrap_or(r)));
    let values: Vec<i64> = x.shape[s..e.max(s)].iter().map(|&d| d as i64).collect();
    let len = values.len();
    finish("Shape", values, &[len], outputs)
}

/// Prepares `Op::Size`: the element count as an int64 scalar.
pub(crate) fn prepare_size(
    inputs: &[Option<InputDesc<'_>>],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let n = numel(x.shape, "Size")?;
    finish("Size", vec![n as i64], &[], outputs)
}

fn finish(
    name: &'static str,
    values: Vec<i64>,
    shape: &[usize],
    outputs: &[OutputDesc],
) -> Result<Box<dyn Kernel>> {
    let y = output(outputs, 0, name)?;
    if y.dtype != DType::I64 || y.shape != shape {
        return Err(Error::shape(
            name,
            format!("output must be int64 {shape:?}, got {} {:?}", y.dtype, y.shape),
        ));
    }
    Ok(Box::new(Values { name, values }))
}

/// Writes fixed int64 values.
struct Values {
    name: &'static str,
    values: Vec<i64>,
}

impl Kernel for Values {
    fn run(&self, _inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let y = outputs
            .first_mut()
            .ok_or_else(|| Error::shape(self.name, "missing output 0"))?;
        let dst = y.typed::<i64>()?;
        if dst.len() != self.values.len() {
            return Err(Error::shape(self.name, "output differs from the prepared shape"));
        }
        dst.copy_from_slice(&self.values);
        Ok(())
    }

    fn label(&self) -> &'static str {
        "constant"
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::cpu::kernels::generate::prepare;
    use crate::backend::cpu::kernels::layout::testutil::*;
    use crate::ir::Op;
    use crate::tensor::{DType, Tensor};

    #[test]
    fn shape_with_start_and_end() {
        let x = Tensor::zeros(DType::F16, vec![2, 3, 0, 5]).unwrap();
        let cases: [(i64, Option<i64>, &[i64]); 9] = [
            (0, None, &[2, 3, 0, 5]),
            (1, None, &[3, 0, 5]),
            (-1, None, &[5]),
            (0, Some(-1), &[2, 3, 0]),
            (-10, Some(10), &[2, 3, 0, 5]),
            (10, None, &[]),
            (3, Some(1), &[]),
            (1, Some(3), &[3, 0]),
            (i64::MIN, Some(i64::MAX), &[2, 3, 0, 5]),
        ];
        for (start, end, want) in cases {
            let op = Op::Shape { start, end };
            let out = run_dynamic(prepare, &op, &[Some(&x)], &[(DType::I64, vec![want.len()])]).unwrap();
            assert_eq!(
                out[0].as_slice::<i64>().unwrap(),
                want,
                "start {start} end {end:?}"
            );
        }
        let scalar = Tensor::scalar(1.0f32);
        let out = run_dynamic(
            prepare,
            &Op::Shape { start: 0, end: None },
            &[Some(&scalar)],
            &[(DType::I64, vec![0])],
        );
        assert!(out.unwrap()[0].is_empty());
        let bad = run_dynamic(
            prepare,
            &Op::Shape { start: 0, end: None },
            &[Some(&x)],
            &[(DType::I32, vec![4])],
        );
        assert!(bad.is_err());
    }

    #[test]
    fn size_counts_elements() {
        let mut rng = Rng::new(81);
        for shape in [vec![], vec![0, 4], vec![2, 3, 4]] {
            let x = random_tensor(&mut rng, DType::Bool, &shape);
            let out = run_dynamic(prepare, &Op::Size, &[Some(&x)], &[(DType::I64, vec![])]).unwrap();
            assert_eq!(
                out[0].as_slice::<i64>().unwrap(),
                &[shape.iter().product::<usize>() as i64]
            );
        }
    }
}
