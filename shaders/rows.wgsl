// Row reductions, one workgroup of 64 invocations per row: global pooling, softmax,
// layer normalization. Row r's element j is x[base(r) + j * stride], where
// base(r) = (r / inner) * len * inner + r % inner (so softmax can reduce along any
// axis); partial results meet in workgroup memory.

const WG: u32 = 64u;

struct RowParams {
    rows: u32,
    len: u32,
    inner: u32,
    // Global pool: 0 average, 1 max. Softmax: 1 for LogSoftmax.
    mode: u32,
    epsilon: f32,
    // LayerNorm: 1 when bias is present, 1 when mean / inv_std_dev are wanted.
    has_bias: u32,
    has_stats: u32,
}

var<workgroup> partial: array<f32, 64>;

fn row_base(r: u32) -> u32 {
    return (r / rp.inner) * rp.len * rp.inner + r % rp.inner;
}

fn reduce_sum(v: f32, li: u32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if li < s {
            partial[li] += partial[li + s];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

fn reduce_max(v: f32, li: u32) -> f32 {
    partial[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if li < s {
            partial[li] = max(partial[li], partial[li + s]);
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@group(0) @binding(0) var<uniform> rp: RowParams;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

// x: rows of `len` contiguous elements (inner = 1); y[r] = mean or max.
@compute @workgroup_size(64)
fn global_pool(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = flat_group(wg, nwg);
    if r >= rp.rows {
        return;
    }
    let base = r * rp.len;
    if rp.mode == 1u {
        var m = -inf();
        for (var j = li; j < rp.len; j += WG) {
            m = max(m, f32(x[base + j]));
        }
        m = reduce_max(m, li);
        if li == 0u {
            y[r] = T(m);
        }
    } else {
        var s = 0.0;
        for (var j = li; j < rp.len; j += WG) {
            s += f32(x[base + j]);
        }
        s = reduce_sum(s, li);
        if li == 0u {
            y[r] = T(s / f32(rp.len));
        }
    }
}

@compute @workgroup_size(64)
fn softmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = flat_group(wg, nwg);
    if r >= rp.rows {
        return;
    }
    let base = row_base(r);
    var m = -inf();
    for (var j = li; j < rp.len; j += WG) {
        m = max(m, f32(x[base + j * rp.inner]));
    }
    m = reduce_max(m, li);
    var s = 0.0;
    for (var j = li; j < rp.len; j += WG) {
        s += exp(f32(x[base + j * rp.inner]) - m);
    }
    s = reduce_sum(s, li);
    let log_s = log(s);
    for (var j = li; j < rp.len; j += WG) {
        let d = f32(x[base + j * rp.inner]) - m;
        if rp.mode == 1u {
            y[base + j * rp.inner] = T(d - log_s);
        } else {
            y[base + j * rp.inner] = T(exp(d) / s);
        }
    }
}

@group(0) @binding(0) var<uniform> lp: RowParams;
@group(0) @binding(1) var<storage, read> l_x: array<T>;
@group(0) @binding(2) var<storage, read> l_scale: array<T>;
@group(0) @binding(3) var<storage, read> l_bias: array<T>;
@group(0) @binding(4) var<storage, read_write> l_y: array<T>;
@group(0) @binding(5) var<storage, read_write> l_mean: array<T>;
@group(0) @binding(6) var<storage, read_write> l_inv_std: array<T>;

// Rows are contiguous (inner = 1); scale and bias have the row's length. The
// variance is the mean of squared deviations (two passes: no cancellation).
@compute @workgroup_size(64)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let r = flat_group(wg, nwg);
    if r >= lp.rows {
        return;
    }
    let base = r * lp.len;
    var s = 0.0;
    for (var j = li; j < lp.len; j += WG) {
        s += f32(l_x[base + j]);
    }
    let mean = reduce_sum(s, li) / f32(lp.len);
    var q = 0.0;
    for (var j = li; j < lp.len; j += WG) {
        let d = f32(l_x[base + j]) - mean;
        q += d * d;
    }
    let inv_std = 1.0 / sqrt(reduce_sum(q, li) / f32(lp.len) + lp.epsilon);
    for (var j = li; j < lp.len; j += WG) {
        var v = (f32(l_x[base + j]) - mean) * inv_std * f32(l_scale[j]);
        if lp.has_bias == 1u {
            v += f32(l_bias[j]);
        }
        l_y[base + j] = T(v);
    }
    if lp.has_stats == 1u && li == 0u {
        l_mean[r] = T(mean);
        l_inv_std[r] = T(inv_std);
    }
}
