//! The two error measures kiln reports whenever it checks an output against a
//! reference (ONNX Runtime, an unoptimized run, a stored `.npy`): the parity tests and
//! `kiln bench --vs ort` use these same functions, so a figure means the same in both.

/// ‖a − b‖₂ / ‖b‖₂ (`b` is the reference); infinite when the lengths differ or a value is NaN.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let d = x as f64 - y as f64;
        num += d * d;
        den += y as f64 * y as f64;
    }
    let r = num.sqrt() / den.sqrt().max(1e-30);
    if r.is_nan() {
        f64::INFINITY
    } else {
        r
    }
}

/// Largest |a − b|; infinite when the lengths differ or a difference is NaN.
pub fn max_abs(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    a.iter().zip(b).fold(0.0f64, |m, (&x, &y)| {
        let d = (x as f64 - y as f64).abs();
        if d.is_nan() {
            f64::INFINITY
        } else {
            m.max(d)
        }
    })
}
