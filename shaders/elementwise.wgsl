// Elementwise kernels, one invocation per output element (256 per workgroup).

struct UnaryParams {
    len: u32,
    code: u32,
    a: f32,
    b: f32,
}

// Broadcasting binary op over up to 8 dimensions (leading ones 1): the output is
// contiguous, each operand is read through its own strides (0 where broadcast).
// `mode` 1 skips the index arithmetic when both operands have the output's shape.
struct BinaryParams {
    dims_lo: vec4<u32>,
    dims_hi: vec4<u32>,
    a_lo: vec4<u32>,
    a_hi: vec4<u32>,
    b_lo: vec4<u32>,
    b_hi: vec4<u32>,
    len: u32,
    code: u32,
    mode: u32,
}

// A fused elementwise chain: per step x = op code (unary codes as in `unary`,
// binary ones + 256, + 512 when the operands are swapped), y = operand binding
// (0-5), z and w = the unary op's parameters (f32 bits). Bit i of `scalar_mask`:
// operand i holds a single element.
struct ChainParams {
    steps: array<vec4<u32>, 16>,
    len: u32,
    count: u32,
    scalar_mask: u32,
}

// y = act(x * scale[c] + shift[c]), c = (i / inner) % channels.
struct AffineParams {
    len: u32,
    inner: u32,
    channels: u32,
    act: u32,
    act_a: f32,
    act_b: f32,
}

@group(0) @binding(0) var<uniform> up: UnaryParams;
@group(0) @binding(1) var<storage, read> u_x: array<T>;
@group(0) @binding(2) var<storage, read_write> u_y: array<T>;

@compute @workgroup_size(256)
fn unary_op(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if i < up.len {
        u_y[i] = T(unary(f32(u_x[i]), up.code, up.a, up.b));
    }
}

@group(0) @binding(0) var<uniform> bp: BinaryParams;
@group(0) @binding(1) var<storage, read> b_a: array<T>;
@group(0) @binding(2) var<storage, read> b_b: array<T>;
@group(0) @binding(3) var<storage, read_write> b_y: array<T>;

fn lane(lo: vec4<u32>, hi: vec4<u32>, d: u32) -> u32 {
    if d < 4u {
        return lo[d];
    }
    return hi[d - 4u];
}

@compute @workgroup_size(256)
fn binary_op(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if i >= bp.len {
        return;
    }
    var ia = i;
    var ib = i;
    if bp.mode == 0u {
        ia = 0u;
        ib = 0u;
        var rest = i;
        for (var d = 7; d >= 0; d--) {
            let n = lane(bp.dims_lo, bp.dims_hi, u32(d));
            let c = rest % n;
            rest = rest / n;
            ia += c * lane(bp.a_lo, bp.a_hi, u32(d));
            ib += c * lane(bp.b_lo, bp.b_hi, u32(d));
        }
    }
    b_y[i] = T(binary(f32(b_a[ia]), f32(b_b[ib]), bp.code));
}

@group(0) @binding(0) var<uniform> cp: ChainParams;
@group(0) @binding(1) var<storage, read> c_x: array<T>;
@group(0) @binding(2) var<storage, read> c_o0: array<T>;
@group(0) @binding(3) var<storage, read> c_o1: array<T>;
@group(0) @binding(4) var<storage, read> c_o2: array<T>;
@group(0) @binding(5) var<storage, read> c_o3: array<T>;
@group(0) @binding(6) var<storage, read> c_o4: array<T>;
@group(0) @binding(7) var<storage, read> c_o5: array<T>;
@group(0) @binding(8) var<storage, read_write> c_y: array<T>;

fn chain_operand(k: u32, i: u32) -> f32 {
    let j = select(i, 0u, ((cp.scalar_mask >> k) & 1u) == 1u);
    switch k {
        case 0u: { return f32(c_o0[j]); }
        case 1u: { return f32(c_o1[j]); }
        case 2u: { return f32(c_o2[j]); }
        case 3u: { return f32(c_o3[j]); }
        case 4u: { return f32(c_o4[j]); }
        default: { return f32(c_o5[j]); }
    }
}

@compute @workgroup_size(256)
fn chain(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if i >= cp.len {
        return;
    }
    var v = f32(c_x[i]);
    for (var s = 0u; s < cp.count; s++) {
        let step = cp.steps[s];
        if step.x < 256u {
            v = unary(v, step.x, bitcast<f32>(step.z), bitcast<f32>(step.w));
        } else {
            let o = chain_operand(step.y, i);
            if step.x >= 512u {
                v = binary(o, v, step.x - 512u);
            } else {
                v = binary(v, o, step.x - 256u);
            }
        }
    }
    c_y[i] = T(v);
}

@group(0) @binding(0) var<uniform> ap: AffineParams;
@group(0) @binding(1) var<storage, read> a_x: array<T>;
@group(0) @binding(2) var<storage, read> a_scale: array<T>;
@group(0) @binding(3) var<storage, read> a_shift: array<T>;
@group(0) @binding(4) var<storage, read_write> a_y: array<T>;

@compute @workgroup_size(256)
fn channel_affine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if i >= ap.len {
        return;
    }
    let c = (i / ap.inner) % ap.channels;
    let v = fma(f32(a_x[i]), f32(a_scale[c]), f32(a_shift[c]));
    a_y[i] = T(unary(v, ap.act, ap.act_a, ap.act_b));
}

// y = x * s[i / inner]: the squeeze-excitation's final scaling, one gate per
// (image, channel) plane.
@group(0) @binding(0) var<uniform> sp: AffineParams;
@group(0) @binding(1) var<storage, read> s_x: array<T>;
@group(0) @binding(2) var<storage, read> s_gate: array<T>;
@group(0) @binding(3) var<storage, read_write> s_y: array<T>;

@compute @workgroup_size(256)
fn scale_planes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if i < sp.len {
        s_y[i] = T(f32(s_x[i]) * f32(s_gate[i / sp.inner]));
    }
}
