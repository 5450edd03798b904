//! Slice: `[x, starts, ends, axes?, steps?]`. A slice is a strided view of `x` (the
//! start gives the offset, the step scales the stride), copied by the strided engine.
//! The parameters are usually initializers and planned once; when the graph computes
//! them, the view is planned on every run (a few small vectors, no big allocation).

use super::params::{
    contiguous_strides, expect_same_dtype, int_param, normalize_axis, numel, output, resolve_ints, IntParam,
};
use super::strided::{StridedCopy, StridedKernel};
use crate::backend::cpu::kernel::{required_desc, InputDesc, Kernel, OutputDesc};
use crate::error::{Error, Result};
use crate::tensor::{View, ViewMut};

const NAME: &str = "Slice";

/// Prepares `Op::Slice`.
pub(crate) fn prepare(inputs: &[Option<InputDesc<'_>>], outputs: &[OutputDesc]) -> Result<Box<dyn Kernel>> {
    let x = required_desc(inputs, 0)?;
    let y = output(outputs, 0, NAME)?;
    expect_same_dtype(x.dtype, y.dtype, NAME)?;
    let params = [
        int_param(inputs, 1, NAME)?,
        int_param(inputs, 2, NAME)?,
        int_param(inputs, 3, NAME)?,
        int_param(inputs, 4, NAME)?,
    ];
    if params[..2].contains(&IntParam::Absent) {
        return Err(Error::shape(NAME, "starts and ends are required"));
    }
    let geometry = Geometry {
        in_shape: x.shape.to_vec(),
        out_shape: y.shape.clone(),
        esize: x.dtype.size(),
    };
    if !params.contains(&IntParam::Runtime) {
        let known = |p: &IntParam| match p {
            IntParam::Known(v) => Some(v.clone()),
            _ => None,
        };
        let plan = geometry.plan(
            &known(&params[0]).unwrap_or_default(),
            &known(&params[1]).unwrap_or_default(),
            known(&params[2]),
            known(&params[3]),
        )?;
        return Ok(Box::new(StridedKernel {
            in_shape: geometry.in_shape,
            plan,
            label: "strided",
        }));
    }
    Ok(Box::new(DynamicSlice { geometry, params }))
}

struct Geometry {
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
    esize: usize,
}

impl Geometry {
    /// Applies ONNX's rules (negative indices count from the end, then clamping that
    /// depends on the step's sign) and checks the result against the output shape.
    fn plan(
        &self,
        starts: &[i64],
        ends: &[i64],
        axes: Option<Vec<i64>>,
        steps: Option<Vec<i64>>,
    ) -> Result<StridedCopy> {
        let rank = self.in_shape.len();
        let n = starts.len();
        let axes = axes.unwrap_or_else(|| (0..n as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; n]);
        if ends.len() != n || axes.len() != n || steps.len() != n {
            return Err(Error::shape(
                NAME,
                format!(
                    "starts, ends, axes and steps have lengths {n}, {}, {}, {}",
                    ends.len(),
                    axes.len(),
                    steps.len()
                ),
            ));
        }
        let in_strides = contiguous_strides(&self.in_shape);
        let mut dims = self.in_shape.clone();
        let mut strides: Vec<isize> = in_strides.iter().map(|&s| s as isize).collect();
        let mut offset = 0usize;
        let mut seen = vec![false; rank];
        for i in 0..n {
            let axis = normalize_axis(axes[i], rank, NAME)?;
            if std::mem::replace(&mut seen[axis], true) {
                return Err(Error::shape(NAME, format!("axis {} is repeated", axes[i])));
            }
            let (start, len, step) = clamp_range(starts[i], ends[i], steps[i], self.in_shape[axis])?;
            dims[axis] = len;
            offset += start * in_strides[axis];
            // With two or more elements |step| < dim, so the stride cannot overflow.
            strides[axis] = if len > 1 {
                (step as isize) * (in_strides[axis] as isize)
            } else {
                0
            };
        }
        if dims != self.out_shape {
            return Err(Error::shape(
                NAME,
                format!("slice has shape {dims:?}, output is {:?}", self.out_shape),
            ));
        }
        if numel(&dims, NAME)? == 0 {
            offset = 0;
        }
        StridedCopy::new(
            NAME,
            self.esize,
            &dims,
            &strides,
            offset,
            numel(&self.in_shape, NAME)?,
        )
    }
}

/// First index, element count and step of one sliced axis of extent `dim`.
fn clamp_range(start: i64, end: i64, step: i64, dim: usize) -> Result<(usize, usize, i64)> {
    if step == 0 {
        return Err(Error::shape(NAME, "step must not be 0"));
    }
    let d = dim as i128;
    let wrap = |v: i64| if v < 0 { v as i128 + d } else { v as i128 };
    let (start, end, step128) = (wrap(start), wrap(end), step as i128);
    let (first, len) = if step > 0 {
        let (s, e) = (start.clamp(0, d), end.clamp(0, d));
        (s, if e > s { (e - s + step128 - 1) / step128 } else { 0 })
    } else {
        // Written with max/min: for an empty axis `d - 1 < 0` and `clamp` would panic.
        let s = start.max(0).min(d - 1);
        let e = end.max(-1).min(d - 1);
        (
            s,
            if s > e {
                (s - e - step128 - 1) / -step128
            } else {
                0
            },
        )
    };
    Ok((first.max(0) as usize, len as usize, step))
}

struct DynamicSlice {
    geometry: Geometry,
    params: [IntParam; 4],
}

impl Kernel for DynamicSlice {
    fn run(&self, inputs: &[Option<View<'_>>], outputs: &mut [ViewMut<'_>]) -> Result<()> {
        let [starts, ends, axes, steps] =
            [1, 2, 3, 4].map(|i| resolve_ints(&self.params[i - 1], inputs, i, NAME));
        let (starts, ends) = (starts?.unwrap_or_default(), ends?.unwrap_or_default());
        let plan = self.geometry.plan(&starts, &ends, axes?, steps?)?;
        let kernel = StridedKernel {
            in_shape: self.geometry.in_shape.clone(),
            plan,
            label: "strided",
        };
        kernel.run(inputs, outputs)
    }

    fn label(&self) -> &'static str {
        "strided (planned per run)"
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use super::clamp_range;
    use crate::backend::cpu::kernels::layout;
    use crate::ir::Op;
    use crate::tensor::{DType, Tensor};

    /// numpy-style reference: the indices of one axis, computed one by one.
    fn reference_indices(start: i64, end: i64, step: i64, dim: usize) -> Vec<usize> {
        let d = dim as i64;
        let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (mut s, mut e) = (norm(start), norm(end));
        let mut out = Vec::new();
        if step > 0 {
            s = s.clamp(0, d);
            e = e.clamp(0, d);
            let mut i = s;
            while i < e {
                out.push(i as usize);
                i = i.saturating_add(step);
            }
        } else {
            s = s.max(0).min(d - 1);
            e = e.max(-1).min(d - 1);
            let mut i = s;
            while i > e {
                out.push(i as usize);
                i = i.saturating_add(step);
            }
        }
        out
    }

    fn reference(x: &Tensor, per_axis: &[Vec<usize>]) -> Vec<u8> {
        let es = x.dtype().size();
        let shape = x.shape();
        let out_shape: Vec<usize> = per_axis.iter().map(Vec::len).collect();
        let n: usize = out_shape.iter().product();
        let mut out = Vec::new();
        for lin in 0..n {
            let mut rem = lin;
            let mut idx = vec![0; shape.len()];
            for d in (0..shape.len()).rev() {
                idx[d] = per_axis[d][rem % out_shape[d]];
                rem /= out_shape[d];
            }
            let off = idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i);
            out.extend_from_slice(&bytes(x)[off * es..(off + 1) * es]);
        }
        out
    }

    fn pick(rng: &mut Rng, dim: usize) -> i64 {
        match rng.below(8) {
            0 => i64::MAX,
            1 => i64::MIN,
            2 => -(dim as i64) - rng.range(1, 3),
            3 => dim as i64 + rng.range(0, 3),
            _ => rng.range(-(dim as i64), dim as i64),
        }
    }

    #[test]
    fn clamping_matches_numpy_for_all_edge_values() {
        let vals = [
            i64::MIN,
            i64::MIN + 1,
            -9,
            -5,
            -4,
            -1,
            0,
            1,
            3,
            4,
            5,
            9,
            i64::MAX - 1,
            i64::MAX,
        ];
        for dim in [0usize, 1, 4] {
            for &s in &vals {
                for &e in &vals {
                    for step in [i64::MIN, -3, -1, 1, 2, i64::MAX] {
                        let (start, len, _) = clamp_range(s, e, step, dim).unwrap();
                        let want = reference_indices(s, e, step, dim);
                        assert_eq!(len, want.len(), "start {s} end {e} step {step} dim {dim}");
                        if len > 0 {
                            assert_eq!(start, want[0]);
                        }
                    }
                }
            }
        }
        assert!(clamp_range(0, 1, 0, 3).is_err());
    }

    #[test]
    fn random_slices_match_the_reference() {
        let mut rng = Rng::new(41);
        for case in 0..300 {
            let dtype = DTYPES[case % DTYPES.len()];
            let rank = rng.below(4) + 1;
            let shape = rng.shape(rank, 6);
            let x = random_tensor(&mut rng, dtype, &shape);
            let mut axes: Vec<usize> = (0..rank).collect();
            rng.shuffle(&mut axes);
            axes.truncate(rng.below(rank) + 1);
            let mut per_axis: Vec<Vec<usize>> = shape.iter().map(|&d| (0..d).collect()).collect();
            let (mut starts, mut ends, mut steps, mut ax) = (vec![], vec![], vec![], vec![]);
            for &a in &axes {
                let (s, e) = (pick(&mut rng, shape[a]), pick(&mut rng, shape[a]));
                let step = match rng.below(6) {
                    0 => -1,
                    1 => -2,
                    2 => 2,
                    3 => 3,
                    _ => 1,
                };
                per_axis[a] = reference_indices(s, e, step, shape[a]);
                starts.push(s);
                ends.push(e);
                steps.push(step);
                ax.push(if rng.below(2) == 0 {
                    a as i64 - rank as i64
                } else {
                    a as i64
                });
            }
            let want = reference(&x, &per_axis);
            let out_shape: Vec<usize> = per_axis.iter().map(Vec::len).collect();
            let t = [vec_i64(&starts), vec_i64(&ends), vec_i64(&ax), vec_i64(&steps)];
            let default_axes = axes.iter().enumerate().all(|(i, &a)| i == a) && rng.below(2) == 0;
            let all_one = steps.iter().all(|&s| s == 1) && rng.below(2) == 0;
            let inputs = [
                Some(&x),
                Some(&t[0]),
                Some(&t[1]),
                if default_axes { None } else { Some(&t[2]) },
                if all_one { None } else { Some(&t[3]) },
            ];
            let outs = [(dtype, out_shape)];
            let out = run_const(layout::prepare, &Op::Slice, &inputs, &outs).unwrap();
            assert_eq!(
                bytes(&out[0]),
                &want[..],
                "shape {shape:?} {starts:?} {ends:?} {ax:?} {steps:?}"
            );
            let out = run_dynamic(layout::prepare, &Op::Slice, &inputs, &outs).unwrap();
            assert_eq!(bytes(&out[0]), &want[..]);
        }
    }

    #[test]
    fn int32_parameters_and_bad_parameters() {
        let x = i64s(&[2, 3], &[0, 1, 2, 3, 4, 5]);
        let i32s = |v: &[i32]| Tensor::from_vec(vec![v.len()], v.to_vec()).unwrap();
        let (s, e, a) = (i32s(&[1]), i32s(&[-1]), i32s(&[1]));
        let out = run_const(
            layout::prepare,
            &Op::Slice,
            &[Some(&x), Some(&s), Some(&e), Some(&a)],
            &[(DType::I64, vec![2, 1])],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &[1, 4]);

        let slice = |starts: &[i64], ends: &[i64], axes: &[i64], steps: &[i64], out: Vec<usize>| {
            let t = [vec_i64(starts), vec_i64(ends), vec_i64(axes), vec_i64(steps)];
            let inputs = [Some(&x), Some(&t[0]), Some(&t[1]), Some(&t[2]), Some(&t[3])];
            let a = run_const(layout::prepare, &Op::Slice, &inputs, &[(DType::I64, out.clone())]);
            let b = run_dynamic(layout::prepare, &Op::Slice, &inputs, &[(DType::I64, out)]);
            assert_eq!(a.is_err(), b.is_err());
            a
        };
        assert!(
            slice(&[0, 0], &[1, 1], &[1, 1], &[1, 1], vec![2, 1]).is_err(),
            "repeated axis"
        );
        assert!(
            slice(&[0, 0], &[1, 1], &[1, -1], &[1, 1], vec![2, 1]).is_err(),
            "repeated negative axis"
        );
        assert!(
            slice(&[0], &[1], &[2], &[1], vec![2, 1]).is_err(),
            "axis out of range"
        );
        assert!(slice(&[0], &[1], &[1], &[0], vec![2, 1]).is_err(), "zero step");
        assert!(
            slice(&[0], &[1, 2], &[1], &[1], vec![2, 1]).is_err(),
            "length mismatch"
        );
        assert!(
            slice(&[0], &[2], &[1], &[1], vec![2, 1]).is_err(),
            "wrong output shape"
        );
        // Unsorted axes are fine.
        let out = slice(&[1, 0], &[3, 1], &[1, 0], &[1, 1], vec![1, 2]).unwrap();
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &[1, 2]);
        let out = slice(
            &[i64::MAX, -1],
            &[i64::MIN, i64::MIN],
            &[0, 1],
            &[-1, -1],
            vec![2, 3],
        )
        .unwrap();
        assert_eq!(out[0].as_slice::<i64>().unwrap(), &[5, 4, 3, 2, 1, 0]);
    }
}
