// Helpers shared by every kiln kernel; the backend prepends this file (after a
// header that defines `T`, the storage element type: f32, or f16 with `enable f16`).
// Storage holds `T`; arithmetic is always f32, so f16 mode only rounds on stores.

// Invocation number of a 1-D kernel. Grids are 2-D because one grid dimension holds
// at most 65535 workgroups; `size` is the workgroup size.
fn flat_id(wg: vec3<u32>, nwg: vec3<u32>, local: u32, size: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * size + local;
}

// Workgroup number of a kernel that runs one workgroup per row.
fn flat_group(wg: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wg.y * nwg.x + wg.x;
}

fn inf() -> f32 {
    return bitcast<f32>(0x7f800000u);
}

fn nan() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}

// ln(1 + x), accurate for small x too (Goldberg's correction: the rounding of
// 1 + x is divided back out).
fn log1p(x: f32) -> f32 {
    let u = 1.0 + x;
    if u == 1.0 {
        return x;
    }
    return log(u) * (x / (u - 1.0));
}

// tanh(x), as the CPU computes it: the odd Taylor series to x^9 for |x| < 0.25
// (some drivers' tanh loses most digits near 0), 1 - 2 / (e^2|x| + 1) elsewhere.
fn tanh_accurate(x: f32) -> f32 {
    let a = abs(x);
    if a < 0.25 {
        let z = x * x;
        var s = 62.0 / 2835.0;
        s = s * z - 17.0 / 315.0;
        s = s * z + 2.0 / 15.0;
        s = s * z - 1.0 / 3.0;
        return x + x * z * s;
    }
    return sign(x) * (1.0 - 2.0 / (exp(2.0 * a) + 1.0));
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

// erf(x) = x P(x^2) / Q(x^2) on [-4, 4], +-1 beyond: kiln's fit, as on the CPU
// (max relative error 4e-7).
fn erf_fit(x0: f32) -> f32 {
    let x = clamp(x0, -4.0, 4.0);
    let t = x * x;
    var p = 1.943761588829568e-8;
    p = p * t - 1.9383910538802803e-6;
    p = p * t + 0.00014302604967117463;
    p = p * t + 0.003792130709771547;
    p = p * t + 0.05088058347554263;
    p = p * t + 0.20233908665087516;
    p = p * t + 1.1283791109995696;
    var q = 0.0009747479083594791;
    q = q * t + 0.014547716102382185;
    q = q * t + 0.11598402445775707;
    q = q * t + 0.5126500244263351;
    q = q * t + 1.0;
    return x * p / q;
}

// Unary functions by code; the codes are `UnaryCode` in src/backend/gpu/codes.rs,
// `a` and `b` are the op's parameters.
fn unary(x: f32, code: u32, a: f32, b: f32) -> f32 {
    switch code {
        case 0u: { return x; }
        case 1u: { return max(x, 0.0); }
        case 2u: { return min(max(x, a), b); }
        case 3u: { return select(x, a * x, x < 0.0); }
        case 4u: { return sigmoid(x); }
        case 5u: { return clamp(a * x + b, 0.0, 1.0); }
        case 6u: { return x * clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0); }
        case 7u: { return x / (1.0 + exp(-x)); }
        case 8u: { return tanh_accurate(x); }
        case 9u: { return exp(x); }
        case 10u: { return log(x); }
        case 11u: { return sqrt(x); }
        case 12u: { return abs(x); }
        case 13u: { return -x; }
        case 14u: { return erf_fit(x); }
        case 15u: { return 1.0 / x; }
        case 16u: { return floor(x); }
        case 17u: { return ceil(x); }
        case 18u: { return round(x); }
        case 19u: { return sign(x); }
        case 20u: { return sin(x); }
        case 21u: { return cos(x); }
        // ln(1 + e^x) without overflow for large x.
        case 22u: { return max(x, 0.0) + log1p(exp(-abs(x))); }
        case 23u: { return x / (1.0 + abs(x)); }
        case 24u: { return select(x, a * (exp(x) - 1.0), x < 0.0); }
        case 25u: { return select(b * (a * exp(x) - a), b * x, x > 0.0); }
        case 26u: { return select(a * (exp(x / a) - 1.0), x, x > 0.0); }
        case 27u: { return 0.5 * x * (1.0 + erf_fit(x * 0.7071067811865476)); }
        // x * sigmoid(2z), z = sqrt(2/pi) (x + 0.044715 x^3): tanh-approximated GELU.
        case 28u: { return x / (1.0 + exp(-2.0 * 0.7978845608028654 * (x + 0.044715 * x * x * x))); }
        case 29u: { return fma(a, x, b); }
        default: { return nan(); }
    }
}

// x^y as ONNX defines it on floats: negative bases with integral exponents allowed.
fn pow_onnx(x: f32, y: f32) -> f32 {
    if y == 0.0 {
        return 1.0;
    }
    if x == 0.0 {
        return select(0.0, inf(), y < 0.0);
    }
    let r = exp2(y * log2(abs(x)));
    if x > 0.0 {
        return r;
    }
    if floor(y) != y {
        return nan();
    }
    return select(r, -r, abs(y) % 2.0 == 1.0);
}

// Binary functions by code (`BinaryCode` in src/backend/gpu/codes.rs).
fn binary(x: f32, y: f32, code: u32) -> f32 {
    switch code {
        case 0u: { return x + y; }
        case 1u: { return x - y; }
        case 2u: { return x * y; }
        case 3u: { return x / y; }
        case 4u: { return pow_onnx(x, y); }
        case 5u: { return max(x, y); }
        case 6u: { return min(x, y); }
        case 7u: { return select(x, x * y, x < 0.0); }
        default: { return nan(); }
    }
}
