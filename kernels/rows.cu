// Row reductions, one block of 64 threads per row (as shaders/rows.wgsl): global
// pooling, softmax, layer normalization. Row r's element j is x[base(r) + j *
// inner], base(r) = (r / inner) * len * inner + r % inner, so softmax reduces
// along any axis.

#define ROW_THREADS 64u

struct RowParams {
    unsigned rows, len, inner;
    // Global pool: 0 average, 1 max. Softmax: 1 for LogSoftmax.
    unsigned mode;
    float epsilon;
    // LayerNorm: 1 when bias is present, 1 when mean / inv_std_dev are wanted.
    unsigned has_bias, has_stats;
};

// Sum (or max) of `v` over the block: warp shuffles, then the two warps' results
// through shared memory. Every thread gets the result.
__device__ __forceinline__ float block_reduce(float v, bool is_max) {
    __shared__ float warp_part[ROW_THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) {
        float u = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? fmaxf(v, u) : v + u;
    }
    const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
    if (lane == 0) warp_part[warp] = v;
    __syncthreads();
    float r = warp_part[0];
    for (unsigned k = 1; k < ROW_THREADS / 32; k++) r = is_max ? fmaxf(r, warp_part[k]) : r + warp_part[k];
    __syncthreads();
    return r;
}

// x: rows of `len` contiguous elements; y[r] = mean or max.
extern "C" __global__ void __launch_bounds__(64)
global_pool(const RowParams p, const T* __restrict__ x, T* __restrict__ y) {
    const unsigned r = flat_group(), li = threadIdx.x;
    if (r >= p.rows) return;
    const unsigned base = r * p.len;
    if (p.mode == 1) {
        float m = -k_inf();
        for (unsigned j = li; j < p.len; j += ROW_THREADS) m = fmaxf(m, ld(x, base + j));
        m = block_reduce(m, true);
        if (li == 0) st(y, r, m);
    } else {
        float s = 0.0f;
        for (unsigned j = li; j < p.len; j += ROW_THREADS) s += ld(x, base + j);
        s = block_reduce(s, false);
        if (li == 0) st(y, r, s / float(p.len));
    }
}

extern "C" __global__ void __launch_bounds__(64)
softmax(const RowParams p, const T* __restrict__ x, T* __restrict__ y) {
    const unsigned r = flat_group(), li = threadIdx.x;
    if (r >= p.rows) return;
    const unsigned base = (r / p.inner) * p.len * p.inner + r % p.inner;
    float m = -k_inf();
    for (unsigned j = li; j < p.len; j += ROW_THREADS) m = fmaxf(m, ld(x, base + j * p.inner));
    m = block_reduce(m, true);
    float s = 0.0f;
    for (unsigned j = li; j < p.len; j += ROW_THREADS) s += expf(ld(x, base + j * p.inner) - m);
    s = block_reduce(s, false);
    const float log_s = logf(s);
    for (unsigned j = li; j < p.len; j += ROW_THREADS) {
        float d = ld(x, base + j * p.inner) - m;
        st(y, base + j * p.inner, p.mode == 1 ? d - log_s : expf(d) / s);
    }
}

// Rows are contiguous; scale and bias have the row's length. The variance is the
// mean of squared deviations (two passes: no cancellation).
extern "C" __global__ void __launch_bounds__(64)
layer_norm(const RowParams p, const T* __restrict__ x, const T* __restrict__ scale,
           const T* __restrict__ bias, T* __restrict__ y, T* __restrict__ mean_out,
           T* __restrict__ inv_std_out) {
    const unsigned r = flat_group(), li = threadIdx.x;
    if (r >= p.rows) return;
    const unsigned base = r * p.len;
    float s = 0.0f;
    for (unsigned j = li; j < p.len; j += ROW_THREADS) s += ld(x, base + j);
    const float mean = block_reduce(s, false) / float(p.len);
    float q = 0.0f;
    for (unsigned j = li; j < p.len; j += ROW_THREADS) {
        float d = ld(x, base + j) - mean;
        q += d * d;
    }
    const float inv_std = 1.0f / sqrtf(block_reduce(q, false) / float(p.len) + p.epsilon);
    for (unsigned j = li; j < p.len; j += ROW_THREADS) {
        float v = (ld(x, base + j) - mean) * inv_std * ld(scale, j);
        if (p.has_bias == 1) v += ld(bias, j);
        st(y, base + j, v);
    }
    if (p.has_stats == 1 && li == 0) {
        st(mean_out, r, mean);
        st(inv_std_out, r, inv_std);
    }
}
