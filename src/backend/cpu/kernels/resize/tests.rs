//! Resize against a port of the ONNX reference's nested 1-D interpolation (edge
//! padding + nearest-neighbour selection, a different route to the same numbers
//! than the kernel's tap tables), plus backend-test examples.

use super::{prepare, resize_output_shape};
use crate::backend::cpu::kernels::compute_tests::{assert_close, run_op, Rng};
use crate::ir::ops::{CoordTransform, KeepAspect, NearestMode, Op, Resize, ResizeMode};
use crate::tensor::{DType, Tensor};

struct Axis {
    scale: f64,
    out: usize,
    roi: (f64, f64),
}

fn coeffs(r: &Resize, ratio: f64) -> Vec<f64> {
    match r.mode {
        ResizeMode::Nearest => {
            if ratio.fract() == 0.0 {
                return vec![0.0, 1.0];
            }
            let up = match r.nearest {
                NearestMode::RoundPreferFloor => ratio > 0.5,
                NearestMode::RoundPreferCeil => ratio >= 0.5,
                NearestMode::Floor => false,
                NearestMode::Ceil => true,
            };
            vec![!up as u8 as f64, up as u8 as f64]
        }
        ResizeMode::Linear => vec![1.0 - ratio, ratio],
        ResizeMode::Cubic => {
            let a = r.cubic_coeff_a as f64;
            let c = |x: f64| {
                let x = x.abs();
                if x <= 1.0 {
                    (a + 2.0) * x * x * x - (a + 3.0) * x * x + 1.0
                } else if x < 2.0 {
                    a * x * x * x - 5.0 * a * x * x + 8.0 * a * x - 4.0 * a
                } else {
                    0.0
                }
            };
            vec![c(ratio + 1.0), c(ratio), c(1.0 - ratio), c(2.0 - ratio)]
        }
    }
}

fn interp_1d(r: &Resize, data: &[f64], ax: &Axis, x: f64) -> f64 {
    let in_w = data.len() as f64;
    let out_w = ax.scale * in_w;
    let x_ori = match r.coord {
        CoordTransform::AlignCorners if out_w == 1.0 => 0.0,
        CoordTransform::AlignCorners => x * (in_w - 1.0) / (out_w - 1.0),
        CoordTransform::Asymmetric => x / ax.scale,
        CoordTransform::TfCropAndResize => {
            let (lo, hi) = ax.roi;
            let v = if out_w == 1.0 {
                (hi - lo) * (in_w - 1.0) / 2.0
            } else {
                x * (hi - lo) * (in_w - 1.0) / (out_w - 1.0)
            } + lo * (in_w - 1.0);
            if v < 0.0 || v > in_w - 1.0 {
                return r.extrapolation_value as f64;
            }
            v
        }
        CoordTransform::PytorchHalfPixel if out_w == 1.0 => -0.5,
        CoordTransform::PytorchHalfPixel | CoordTransform::HalfPixel => (x + 0.5) / ax.scale - 0.5,
        CoordTransform::HalfPixelSymmetric => {
            let adjustment = ax.out as f64 / out_w;
            in_w / 2.0 * (1.0 - adjustment) + (x + 0.5) / ax.scale - 0.5
        }
    };
    let ratio = if x_ori.fract() == 0.0 {
        1.0
    } else {
        x_ori - x_ori.floor()
    };
    let mut c = coeffs(r, ratio);
    let n = c.len();
    let pad = n.div_ceil(2);
    let padded: Vec<f64> = (0..data.len() + 2 * pad)
        .map(|i| data[(i as isize - pad as isize).clamp(0, data.len() as isize - 1) as usize])
        .collect();
    let xp = x_ori + pad as f64;
    let mut idx: Vec<usize> = (0..padded.len()).collect();
    idx.sort_by(|&a, &b| {
        ((xp - a as f64).abs(), a)
            .partial_cmp(&((xp - b as f64).abs(), b))
            .unwrap()
    });
    let mut idx = idx[..n].to_vec();
    idx.sort();
    if r.exclude_outside {
        for (i, &k) in idx.iter().enumerate() {
            let orig = k as isize - pad as isize;
            if orig < 0 || orig >= data.len() as isize {
                c[i] = 0.0;
            }
        }
        let s: f64 = c.iter().sum();
        c.iter_mut().for_each(|v| *v /= s);
    }
    idx.iter().zip(&c).map(|(&k, &w)| w * padded[k]).sum()
}

fn interp_nd(r: &Resize, data: &[f64], dims: &[usize], axes: &[Axis], x: &[usize]) -> f64 {
    if dims.len() == 1 {
        return interp_1d(r, data, &axes[0], x[0] as f64);
    }
    let inner: usize = dims[1..].iter().product();
    let rows: Vec<f64> = (0..dims[0])
        .map(|i| interp_nd(r, &data[i * inner..][..inner], &dims[1..], &axes[1..], &x[1..]))
        .collect();
    interp_1d(r, &rows, &axes[0], x[0] as f64)
}

fn reference(r: &Resize, x: &Tensor, axes: &[Axis]) -> Vec<f64> {
    let data: Vec<f64> = x.as_slice::<f32>().unwrap().iter().map(|&v| v as f64).collect();
    let out: Vec<usize> = axes.iter().map(|a| a.out).collect();
    let total: usize = out.iter().product();
    (0..total)
        .map(|mut p| {
            let mut idx = vec![0; out.len()];
            for a in (0..out.len()).rev() {
                idx[a] = p % out[a];
                p /= out[a];
            }
            interp_nd(r, &data, x.shape(), axes, &idx)
        })
        .collect()
}

fn base_resize(mode: ResizeMode, coord: CoordTransform) -> Resize {
    Resize {
        mode,
        coord,
        nearest: NearestMode::RoundPreferFloor,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        axes: vec![],
        keep_aspect_ratio: KeepAspect::Stretch,
    }
}

fn run(
    r: &Resize,
    x: Tensor,
    roi: Option<Vec<f32>>,
    scales: Option<Vec<f32>>,
    sizes: Option<Vec<i64>>,
    out: Vec<usize>,
) -> Vec<f32> {
    let t = |v: Vec<f32>| Tensor::from_vec(vec![v.len()], v).unwrap();
    let inputs = [
        Some(x),
        roi.map(t),
        scales.map(t),
        sizes.map(|s| Tensor::from_vec(vec![s.len()], s).unwrap()),
    ];
    let got = run_op(
        prepare,
        &Op::Resize(r.clone()),
        &inputs,
        &[false, true, true, true],
        &[(DType::F32, out)],
    )
    .unwrap();
    got[0].as_slice::<f32>().unwrap().to_vec()
}

#[test]
fn backend_test_examples() {
    let x22 = Tensor::from_vec(vec![1, 1, 2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let r = base_resize(ResizeMode::Linear, CoordTransform::HalfPixel);
    let got = run(
        &r,
        x22.clone(),
        None,
        Some(vec![1.0, 1.0, 2.0, 2.0]),
        None,
        vec![1, 1, 4, 4],
    );
    let want = [
        1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3.0, 3.25, 3.75, 4.0,
    ];
    assert_close(&got, &want, 1e-6, "resize_upsample_scales_linear");

    let x24 = Tensor::from_vec(vec![1, 1, 2, 4], (1..=8).map(|v| v as f32).collect()).unwrap();
    let r = base_resize(ResizeMode::Linear, CoordTransform::AlignCorners);
    let got = run(
        &r,
        x24,
        None,
        Some(vec![1.0, 1.0, 0.6, 0.6]),
        None,
        vec![1, 1, 1, 2],
    );
    assert_close(
        &got,
        &[1.0, 3.142857],
        1e-6,
        "resize_downsample_scales_linear_align_corners",
    );

    let x44 = Tensor::from_vec(vec![1, 1, 4, 4], (1..=16).map(|v| v as f32).collect()).unwrap();
    let r = base_resize(ResizeMode::Cubic, CoordTransform::HalfPixel);
    let got = run(
        &r,
        x44.clone(),
        None,
        Some(vec![1.0, 1.0, 0.8, 0.8]),
        None,
        vec![1, 1, 3, 3],
    );
    let want = [
        1.47119141,
        2.78125,
        4.08251953,
        6.71142578,
        8.02148438,
        9.32275391,
        11.91650391,
        13.2265625,
        14.52783203,
    ];
    assert_close(&got, &want, 1e-6, "resize_downsample_scales_cubic");

    let r = base_resize(ResizeMode::Linear, CoordTransform::TfCropAndResize);
    let roi = vec![0.0, 0.0, 0.4, 0.6, 1.0, 1.0, 0.6, 0.8];
    let got = run(&r, x44, Some(roi), None, Some(vec![1, 1, 3, 3]), vec![1, 1, 3, 3]);
    let want = [7.6, 7.9, 8.2, 8.8, 9.1, 9.4, 10.0, 10.3, 10.6];
    assert_close(&got, &want, 1e-5, "resize_tf_crop_and_resize");

    let r = base_resize(ResizeMode::Nearest, CoordTransform::HalfPixel);
    let got = run(
        &r,
        x22,
        None,
        Some(vec![1.0, 1.0, 2.0, 3.0]),
        None,
        vec![1, 1, 4, 6],
    );
    let row = |a: f64, b: f64| [a, a, a, b, b, b];
    let want: Vec<f64> = [row(1., 2.), row(1., 2.), row(3., 4.), row(3., 4.)].concat();
    assert_close(&got, &want, 0.0, "resize_upsample_scales_nearest");
}

#[test]
fn resize_matches_the_reference_algorithm() {
    let mut rng = Rng::new(30);
    let modes = [ResizeMode::Nearest, ResizeMode::Linear, ResizeMode::Cubic];
    let coords = [
        CoordTransform::HalfPixel,
        CoordTransform::HalfPixelSymmetric,
        CoordTransform::PytorchHalfPixel,
        CoordTransform::AlignCorners,
        CoordTransform::Asymmetric,
        CoordTransform::TfCropAndResize,
    ];
    let nearest = [
        NearestMode::RoundPreferFloor,
        NearestMode::RoundPreferCeil,
        NearestMode::Floor,
        NearestMode::Ceil,
    ];
    for trial in 0..400 {
        let rank = rng.range(1, 4);
        let shape: Vec<usize> = (0..rank).map(|_| rng.range(1, 5)).collect();
        let mut r = base_resize(rng.pick(&modes), rng.pick(&coords));
        r.nearest = rng.pick(&nearest);
        r.exclude_outside = rng.range(0, 3) == 0;
        r.cubic_coeff_a = rng.pick(&[-0.75, -0.5]);
        r.extrapolation_value = rng.pick(&[0.0, -7.5]);
        let axes: Vec<usize> = if rng.range(0, 2) == 0 {
            let mut a: Vec<usize> = (0..rank).filter(|_| rng.range(0, 1) == 1).collect();
            if a.is_empty() {
                a.push(rank - 1);
            }
            r.axes = a
                .iter()
                .map(|&v| {
                    if rng.range(0, 1) == 1 {
                        v as i64 - rank as i64
                    } else {
                        v as i64
                    }
                })
                .collect();
            a
        } else {
            (0..rank).collect()
        };
        let use_sizes = rng.range(0, 1) == 1;
        let (scales, sizes) = if use_sizes {
            r.keep_aspect_ratio =
                rng.pick(&[KeepAspect::Stretch, KeepAspect::NotLarger, KeepAspect::NotSmaller]);
            (
                None,
                Some(axes.iter().map(|_| rng.range(1, 8) as i64).collect::<Vec<_>>()),
            )
        } else {
            let s = [0.5f32, 0.6, 0.8, 1.0, 1.5, 2.0, 2.5, 3.0];
            (Some(axes.iter().map(|_| rng.pick(&s)).collect::<Vec<_>>()), None)
        };
        let roi: Option<Vec<f32>> = (r.coord == CoordTransform::TfCropAndResize).then(|| {
            let starts: Vec<f32> = axes.iter().map(|_| rng.f32() * 0.3).collect();
            let ends: Vec<f32> = axes.iter().map(|_| 0.7 + rng.f32() * 0.4).collect();
            [starts, ends].concat()
        });
        let out = resize_output_shape(&r, &shape, scales.as_deref(), sizes.as_deref()).unwrap();
        // Per-axis scale and ROI, resolved as the reference does.
        let mut ref_axes: Vec<Axis> = shape
            .iter()
            .map(|&n| Axis {
                scale: 1.0,
                out: n,
                roi: (0.0, 1.0),
            })
            .collect();
        for (i, &a) in axes.iter().enumerate() {
            ref_axes[a].out = out[a];
            ref_axes[a].scale = match (&scales, r.keep_aspect_ratio) {
                (Some(s), _) => s[i] as f64,
                (None, KeepAspect::Stretch) => sizes.as_ref().unwrap()[i] as f64 / shape[a] as f64,
                (None, policy) => {
                    let ratios = axes
                        .iter()
                        .enumerate()
                        .map(|(j, &b)| sizes.as_ref().unwrap()[j] as f64 / shape[b] as f64);
                    if policy == KeepAspect::NotLarger {
                        ratios.fold(f64::INFINITY, f64::min)
                    } else {
                        ratios.fold(0.0, f64::max)
                    }
                }
            };
            if let Some(roi) = &roi {
                ref_axes[a].roi = (roi[i] as f64, roi[axes.len() + i] as f64);
            }
        }
        let x = rng.tensor(&shape);
        let want = reference(&r, &x, &ref_axes);
        let got = run(&r, x, roi, scales.clone(), sizes.clone(), out.clone());
        let what =
            format!("trial {trial}: {r:?} shape {shape:?} scales {scales:?} sizes {sizes:?} out {out:?}");
        assert_close(&got, &want, 1e-5, &what);
    }
}

#[test]
fn bad_resizes_are_errors() {
    let r = base_resize(ResizeMode::Linear, CoordTransform::HalfPixel);
    assert!(resize_output_shape(&r, &[1, 2], Some(&[1.0, 0.0]), None).is_err());
    assert!(resize_output_shape(&r, &[1, 2], Some(&[1.0]), None).is_err());
    assert!(resize_output_shape(&r, &[1, 2], None, None).is_err());
    assert!(resize_output_shape(&r, &[1, 2], None, Some(&[1, -3])).is_err());
    let mut bad_axes = r.clone();
    bad_axes.axes = vec![0, 0];
    assert!(resize_output_shape(&bad_axes, &[1, 2], Some(&[1.0, 1.0]), None).is_err());
    assert_eq!(
        resize_output_shape(&r, &[1, 3, 5], Some(&[1.0, 1.0, 1.5]), None).unwrap(),
        vec![1, 3, 7]
    );
}
