// Gemm and MatMul: out[batch] = act(alpha * A B + beta * C), A and B read through
// strides (transposes and broadcast batches cost nothing), C broadcast by strides.

struct GemmParams {
    // Batch dimensions of the output (up to 4, leading ones 1) and, per operand,
    // the element stride of each (0 where the operand is broadcast).
    batch_dims: vec4<u32>,
    a_batch_strides: vec4<u32>,
    b_batch_strides: vec4<u32>,
    m: u32,
    n: u32,
    k: u32,
    // A(m, k) = a[m * a_sm + k * a_sk], B(k, n) = b[k * b_sk + n * b_sn].
    a_sm: u32,
    a_sk: u32,
    b_sk: u32,
    b_sn: u32,
    // C(m, n) = c[m * c_sm + n * c_sn] (strides 0 broadcast); has_c = 0: no C.
    c_sm: u32,
    c_sn: u32,
    has_c: u32,
    alpha: f32,
    beta: f32,
    act: u32,
    act_a: f32,
    act_b: f32,
}

@group(0) @binding(0) var<uniform> gp: GemmParams;
@group(0) @binding(1) var<storage, read> in_a: array<T>;
@group(0) @binding(2) var<storage, read> in_b: array<T>;
@group(0) @binding(3) var<storage, read> in_c: array<T>;
@group(0) @binding(4) var<storage, read_write> out: array<T>;

@compute @workgroup_size(16, 16)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    // Batch index -> operand offsets.
    var rest = wg.z;
    var a_off = 0u;
    var b_off = 0u;
    for (var d = 3; d >= 0; d--) {
        let i = rest % gp.batch_dims[d];
        rest = rest / gp.batch_dims[d];
        a_off += i * gp.a_batch_strides[d];
        b_off += i * gp.b_batch_strides[d];
    }
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < gp.k; k0 += BK) {
        for (var r = 0u; r < 4u; r++) {
            let e = t + 256u * r;
            let kk = e / BM;
            let mm = e % BM;
            let k = k0 + kk;
            var va = 0.0;
            if m0 + mm < gp.m && k < gp.k {
                va = f32(in_a[a_off + (m0 + mm) * gp.a_sm + k * gp.a_sk]);
            }
            tile_a[e] = va;
            let nn = e % BN;
            var vb = 0.0;
            if n0 + nn < gp.n && k < gp.k {
                vb = f32(in_b[b_off + k * gp.b_sk + (n0 + nn) * gp.b_sn]);
            }
            tile_b[e] = vb;
        }
        workgroupBarrier();
        tile_product(&acc, tx, ty);
        workgroupBarrier();
    }
    let out_off = wg.z * gp.m * gp.n;
    for (var i = 0u; i < 4u; i++) {
        let m = m0 + ty + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + tx + 16u * j;
            if m < gp.m && n < gp.n {
                var v = gp.alpha * acc[i][j];
                if gp.has_c == 1u {
                    v += gp.beta * f32(in_c[m * gp.c_sm + n * gp.c_sn]);
                }
                out[out_off + m * gp.n + n] = T(unary(v, gp.act, gp.act_a, gp.act_b));
            }
        }
    }
}
