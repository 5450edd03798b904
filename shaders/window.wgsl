// Sliding-window kernels on NCHW planes, one invocation per output element:
// depthwise convolution and local pooling. 1-D windows run as H = 1.

struct Window {
    planes: u32,
    // The plane geometry (`Plane` in src/backend/wgpu/prepare/window.rs): input
    // and output sizes, window, strides, begin pads, dilations, and the padded
    // input's extent (taps past it never count: ceil_mode windows).
    h: u32,
    w: u32,
    oh: u32,
    ow: u32,
    kh: u32,
    kw: u32,
    stride_h: u32,
    stride_w: u32,
    pad_h: u32,
    pad_w: u32,
    dil_h: u32,
    dil_w: u32,
    padded_h: u32,
    padded_w: u32,
    // Depthwise: output channels, and output channels per input channel.
    channels: u32,
    multiplier: u32,
    has_bias: u32,
    has_residual: u32,
    act: u32,
    act_a: f32,
    act_b: f32,
    // Pooling: 0 max, 1 average; for the average, whether padding counts.
    kind: u32,
    count_include_pad: u32,
}

@group(0) @binding(0) var<uniform> dp: Window;
@group(0) @binding(1) var<storage, read> d_x: array<T>;
@group(0) @binding(2) var<storage, read> d_w: array<T>;
@group(0) @binding(3) var<storage, read> d_bias: array<T>;
@group(0) @binding(4) var<storage, read> d_res: array<T>;
@group(0) @binding(5) var<storage, read_write> d_y: array<T>;

// Output element i of plane (image, co) reads input plane (image, co / multiplier)
// through the weights w[co][ky][kx].
@compute @workgroup_size(256)
fn depthwise(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    let plane_out = dp.oh * dp.ow;
    if i >= dp.planes * plane_out {
        return;
    }
    let plane = i / plane_out;
    let pos = i - plane * plane_out;
    let oy = pos / dp.ow;
    let ox = pos - oy * dp.ow;
    let co = plane % dp.channels;
    let img = plane / dp.channels;
    let in_channels = dp.channels / dp.multiplier;
    let x_off = (img * in_channels + co / dp.multiplier) * dp.h * dp.w;
    let w_off = co * dp.kh * dp.kw;
    var acc = 0.0;
    for (var ky = 0u; ky < dp.kh; ky++) {
        let iy = i32(oy * dp.stride_h + ky * dp.dil_h) - i32(dp.pad_h);
        if iy < 0 || iy >= i32(dp.h) {
            continue;
        }
        for (var kx = 0u; kx < dp.kw; kx++) {
            let ix = i32(ox * dp.stride_w + kx * dp.dil_w) - i32(dp.pad_w);
            if ix >= 0 && ix < i32(dp.w) {
                acc = fma(f32(d_x[x_off + u32(iy) * dp.w + u32(ix)]), f32(d_w[w_off + ky * dp.kw + kx]), acc);
            }
        }
    }
    if dp.has_bias == 1u {
        acc += f32(d_bias[co]);
    }
    if dp.has_residual == 1u {
        acc += f32(d_res[i]);
    }
    d_y[i] = T(unary(acc, dp.act, dp.act_a, dp.act_b));
}

@group(0) @binding(0) var<uniform> pp: Window;
@group(0) @binding(1) var<storage, read> p_x: array<T>;
@group(0) @binding(2) var<storage, read_write> p_y: array<T>;

@compute @workgroup_size(256)
fn pool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    let plane_out = pp.oh * pp.ow;
    if i >= pp.planes * plane_out {
        return;
    }
    let plane = i / plane_out;
    let pos = i - plane * plane_out;
    let oy = pos / pp.ow;
    let ox = pos - oy * pp.ow;
    let x_off = plane * pp.h * pp.w;
    var best = -inf();
    var sum = 0.0;
    var inside = 0u;
    var padded = 0u;
    for (var ky = 0u; ky < pp.kh; ky++) {
        let py = oy * pp.stride_h + ky * pp.dil_h;
        let iy = i32(py) - i32(pp.pad_h);
        for (var kx = 0u; kx < pp.kw; kx++) {
            let px = ox * pp.stride_w + kx * pp.dil_w;
            let ix = i32(px) - i32(pp.pad_w);
            if py < pp.padded_h && px < pp.padded_w {
                padded += 1u;
            }
            if iy >= 0 && iy < i32(pp.h) && ix >= 0 && ix < i32(pp.w) {
                let v = f32(p_x[x_off + u32(iy) * pp.w + u32(ix)]);
                best = max(best, v);
                sum += v;
                inside += 1u;
            }
        }
    }
    if pp.kind == 0u {
        p_y[i] = T(best);
    } else {
        let count = select(inside, padded, pp.count_include_pad == 1u);
        p_y[i] = T(sum / f32(max(count, 1u)));
    }
}
