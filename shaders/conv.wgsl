// Convolution as an implicit GEMM: C[co][n] = sum_k W[co][k] im2col[k][n], the
// im2col matrix never stored: its elements are gathered from the input as the B
// tiles are loaded. Fused epilogue: bias, residual add, activation.

struct ConvParams {
    batch: u32,
    groups: u32,
    // Input channels, and input and output channels per group (the GEMM's M).
    in_channels: u32,
    group_in: u32,
    group_out: u32,
    // The plane geometry, as in window.wgsl (padded_h / padded_w unused here).
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
    // 1: a 1x1, stride-1, unpadded conv, whose B matrix is the input itself.
    pointwise: u32,
    has_bias: u32,
    has_residual: u32,
    act: u32,
    act_a: f32,
    act_b: f32,
}

@group(0) @binding(0) var<uniform> cp: ConvParams;
@group(0) @binding(1) var<storage, read> in_x: array<T>;
@group(0) @binding(2) var<storage, read> in_w: array<T>;
@group(0) @binding(3) var<storage, read> in_bias: array<T>;
@group(0) @binding(4) var<storage, read> in_res: array<T>;
@group(0) @binding(5) var<storage, read_write> out: array<T>;

// The conv's B(k, n) for image `img` of group `g`: the input pixel that tap k of
// output position n reads, or 0 in the padding.
fn conv_b(img: u32, g: u32, k: u32, n: u32) -> f32 {
    let plane = cp.h * cp.w;
    if cp.pointwise == 1u {
        return f32(in_x[(img * cp.in_channels + g * cp.group_in + k) * plane + n]);
    }
    let taps = cp.kh * cp.kw;
    let ci = k / taps;
    let r = k - ci * taps;
    let ky = r / cp.kw;
    let kx = r - ky * cp.kw;
    let oy = n / cp.ow;
    let ox = n - oy * cp.ow;
    let iy = i32(oy * cp.stride_h + ky * cp.dil_h) - i32(cp.pad_h);
    let ix = i32(ox * cp.stride_w + kx * cp.dil_w) - i32(cp.pad_w);
    if iy < 0 || ix < 0 || iy >= i32(cp.h) || ix >= i32(cp.w) {
        return 0.0;
    }
    return f32(in_x[(img * cp.in_channels + g * cp.group_in + ci) * plane + u32(iy) * cp.w + u32(ix)]);
}

// Weights come packed as [group][k][m] (k = input channel * taps + tap), so a tile
// row of A is contiguous. Grid: x over output positions, y over output channels of
// a group, z over (image, group).
@compute @workgroup_size(16, 16)
fn conv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    let img = wg.z / cp.groups;
    let g = wg.z - img * cp.groups;
    let m_len = cp.group_out;
    let n_len = cp.oh * cp.ow;
    let k_len = cp.group_in * cp.kh * cp.kw;
    let w_off = g * k_len * m_len;
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < k_len; k0 += BK) {
        for (var r = 0u; r < 4u; r++) {
            let e = t + 256u * r;
            let kk = e / BM;
            let mm = e % BM;
            let k = k0 + kk;
            var va = 0.0;
            if m0 + mm < m_len && k < k_len {
                va = f32(in_w[w_off + k * m_len + m0 + mm]);
            }
            tile_a[e] = va;
            let nn = e % BN;
            var vb = 0.0;
            if n0 + nn < n_len && k < k_len {
                vb = conv_b(img, g, k, n0 + nn);
            }
            tile_b[e] = vb;
        }
        workgroupBarrier();
        tile_product(&acc, tx, ty);
        workgroupBarrier();
    }
    let out_channels = cp.groups * m_len;
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + ty + 16u * i;
        if m >= m_len {
            continue;
        }
        let co = g * m_len + m;
        var bias = 0.0;
        if cp.has_bias == 1u {
            bias = f32(in_bias[co]);
        }
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + tx + 16u * j;
            if n < n_len {
                let o = (img * out_channels + co) * n_len + n;
                var v = acc[i][j] + bias;
                if cp.has_residual == 1u {
                    v += f32(in_res[o]);
                }
                out[o] = T(unary(v, cp.act, cp.act_a, cp.act_b));
            }
        }
    }
}
