// The two small matrix-vector products of a squeeze-excitation block, between its
// global average pool and its channel scaling (rows.wgsl, elementwise.wgsl):
//   hidden[n][r] = act(b1[r] + sum_c w1[r][c] mean[n][c])
//   gate[n][c]   = act(b2[c] + sum_r w2[c][r] hidden[n][r])
// One invocation per output; the vectors are short (tens to a few thousand).

struct DenseParams {
    // Outputs per image, inputs per output, images.
    outputs: u32,
    inputs: u32,
    images: u32,
    has_bias: u32,
    act: u32,
    act_a: f32,
    act_b: f32,
}

@group(0) @binding(0) var<uniform> p: DenseParams;
@group(0) @binding(1) var<storage, read> v: array<T>;
@group(0) @binding(2) var<storage, read> w: array<T>;
@group(0) @binding(3) var<storage, read> bias: array<T>;
@group(0) @binding(4) var<storage, read_write> y: array<T>;

@compute @workgroup_size(64)
fn dense(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 64u);
    if i >= p.outputs * p.images {
        return;
    }
    let img = i / p.outputs;
    let o = i - img * p.outputs;
    var acc = 0.0;
    if p.has_bias == 1u {
        acc = f32(bias[o]);
    }
    for (var c = 0u; c < p.inputs; c++) {
        acc = fma(f32(w[o * p.inputs + c]), f32(v[img * p.inputs + c]), acc);
    }
    y[i] = T(unary(acc, p.act, p.act_a, p.act_b));
}
