// Tiled matrix products (as shaders/tile.wgsl, gemm.wgsl and conv.wgsl): the
// fallbacks for the products cuBLAS and cuDNN do not take (strided or broadcast
// MatMul batches, convs with asymmetric padding).
//
// A block of 16x16 threads computes a 64x64 block of C, each thread a 4x4
// register block (rows ty + 16i, columns tx + 16j, so neighbouring threads store
// neighbouring columns). K is walked 16 at a time through shared memory: each of
// the 256 threads loads 4 elements of each tile per step.

#define BM 64u
#define BN 64u
#define BK 16u

// Multiplies the two shared tiles ([BK][BM] and [BK][BN]) into the register block.
__device__ __forceinline__ void tile_product(float acc[4][4], const float* tile_a,
                                             const float* tile_b, unsigned tx, unsigned ty) {
#pragma unroll
    for (unsigned kk = 0; kk < BK; kk++) {
        float av[4], bv[4];
#pragma unroll
        for (unsigned i = 0; i < 4; i++) {
            av[i] = tile_a[kk * BM + ty + 16 * i];
            bv[i] = tile_b[kk * BN + tx + 16 * i];
        }
#pragma unroll
        for (unsigned i = 0; i < 4; i++)
#pragma unroll
            for (unsigned j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
    }
}

// out[batch] = act(alpha * A B + beta * C), A and B read through strides
// (transposes and broadcast batches cost nothing), C broadcast by strides.
struct GemmParams {
    // Batch dimensions of the output (leading ones 1) and, per operand, the
    // element stride of each (0 where the operand is broadcast).
    unsigned batch_dims[4];
    unsigned a_batch_strides[4];
    unsigned b_batch_strides[4];
    unsigned m, n, k;
    // A(m, k) = a[m * a_sm + k * a_sk], B(k, n) = b[k * b_sk + n * b_sn].
    unsigned a_sm, a_sk, b_sk, b_sn;
    // C(m, n) = c[m * c_sm + n * c_sn] (strides 0 broadcast); has_c = 0: no C.
    unsigned c_sm, c_sn, has_c;
    float alpha, beta;
    unsigned act;
    float act_a, act_b;
    unsigned pad_;
};

extern "C" __global__ void __launch_bounds__(256)
gemm(const GemmParams p, const T* __restrict__ in_a, const T* __restrict__ in_b,
     const T* __restrict__ in_c, T* __restrict__ out) {
    __shared__ float tile_a[BK * BM];
    __shared__ float tile_b[BK * BN];
    const unsigned tx = threadIdx.x, ty = threadIdx.y, t = ty * 16 + tx;
    const unsigned m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    unsigned rest = blockIdx.z, a_off = 0, b_off = 0;
    for (int d = 3; d >= 0; d--) {
        unsigned i = rest % p.batch_dims[d];
        rest /= p.batch_dims[d];
        a_off += i * p.a_batch_strides[d];
        b_off += i * p.b_batch_strides[d];
    }
    float acc[4][4] = {};
    for (unsigned k0 = 0; k0 < p.k; k0 += BK) {
#pragma unroll
        for (unsigned r = 0; r < 4; r++) {
            unsigned e = t + 256 * r, kk = e / BM, mm = e % BM, nn = e % BN, k = k0 + kk;
            tile_a[e] = (m0 + mm < p.m && k < p.k) ? ld(in_a, a_off + (m0 + mm) * p.a_sm + k * p.a_sk) : 0.0f;
            tile_b[e] = (n0 + nn < p.n && k < p.k) ? ld(in_b, b_off + k * p.b_sk + (n0 + nn) * p.b_sn) : 0.0f;
        }
        __syncthreads();
        tile_product(acc, tile_a, tile_b, tx, ty);
        __syncthreads();
    }
    const unsigned out_off = blockIdx.z * p.m * p.n;
    for (unsigned i = 0; i < 4; i++) {
        unsigned m = m0 + ty + 16 * i;
        for (unsigned j = 0; j < 4; j++) {
            unsigned n = n0 + tx + 16 * j;
            if (m < p.m && n < p.n) {
                float v = p.alpha * acc[i][j];
                if (p.has_c == 1) v += p.beta * ld(in_c, m * p.c_sm + n * p.c_sn);
                st(out, out_off + m * p.n + n, unary(v, p.act, p.act_a, p.act_b));
            }
        }
    }
}

// The plane geometry of convolutions and windows (`Plane` in
// src/backend/gpu/prepare/window.rs): input and output sizes, window, strides,
// begin pads, dilations, and the padded input's extent (ceil_mode windows).
struct Plane {
    unsigned h, w, oh, ow, kh, kw, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, padded_h, padded_w;
};

struct ConvParams {
    unsigned batch, groups;
    // Input channels, and input and output channels per group (the GEMM's M).
    unsigned in_channels, group_in, group_out;
    Plane pl;
    // 1: a 1x1, stride-1, unpadded conv, whose B matrix is the input itself.
    unsigned pointwise, has_bias, has_residual, act;
    float act_a, act_b;
};

// The conv's B(k, n) for image `img` of group `g`: the input pixel that tap k of
// output position n reads, or 0 in the padding.
__device__ __forceinline__ float conv_b(const ConvParams& p, const T* x, unsigned img, unsigned g,
                                        unsigned k, unsigned n) {
    const unsigned plane = p.pl.h * p.pl.w;
    const unsigned base = (img * p.in_channels + g * p.group_in) * plane;
    if (p.pointwise == 1) return ld(x, base + k * plane + n);
    const unsigned taps = p.pl.kh * p.pl.kw, ci = k / taps, r = k - ci * taps;
    const unsigned ky = r / p.pl.kw, kx = r - ky * p.pl.kw;
    const unsigned oy = n / p.pl.ow, ox = n - oy * p.pl.ow;
    const int iy = int(oy * p.pl.stride_h + ky * p.pl.dil_h) - int(p.pl.pad_h);
    const int ix = int(ox * p.pl.stride_w + kx * p.pl.dil_w) - int(p.pl.pad_w);
    if (iy < 0 || ix < 0 || iy >= int(p.pl.h) || ix >= int(p.pl.w)) return 0.0f;
    return ld(x, base + ci * plane + unsigned(iy) * p.pl.w + unsigned(ix));
}

// Convolution as an implicit GEMM: C[co][n] = sum_k W[co][k] im2col[k][n], the
// im2col matrix never stored. Weights come packed as [group][k][m]. Grid: x over
// output positions, y over output channels of a group, z over (image, group).
// Fused epilogue: bias, residual add, activation.
extern "C" __global__ void __launch_bounds__(256)
conv(const ConvParams p, const T* __restrict__ in_x, const T* __restrict__ in_w,
     const T* __restrict__ in_bias, const T* __restrict__ in_res, T* __restrict__ out) {
    __shared__ float tile_a[BK * BM];
    __shared__ float tile_b[BK * BN];
    const unsigned tx = threadIdx.x, ty = threadIdx.y, t = ty * 16 + tx;
    const unsigned m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const unsigned img = blockIdx.z / p.groups, g = blockIdx.z - img * p.groups;
    const unsigned m_len = p.group_out, n_len = p.pl.oh * p.pl.ow;
    const unsigned k_len = p.group_in * p.pl.kh * p.pl.kw, w_off = g * k_len * m_len;
    float acc[4][4] = {};
    for (unsigned k0 = 0; k0 < k_len; k0 += BK) {
#pragma unroll
        for (unsigned r = 0; r < 4; r++) {
            unsigned e = t + 256 * r, kk = e / BM, mm = e % BM, nn = e % BN, k = k0 + kk;
            tile_a[e] = (m0 + mm < m_len && k < k_len) ? ld(in_w, w_off + k * m_len + m0 + mm) : 0.0f;
            tile_b[e] = (n0 + nn < n_len && k < k_len) ? conv_b(p, in_x, img, g, k, n0 + nn) : 0.0f;
        }
        __syncthreads();
        tile_product(acc, tile_a, tile_b, tx, ty);
        __syncthreads();
    }
    const unsigned out_channels = p.groups * m_len;
    for (unsigned i = 0; i < 4; i++) {
        unsigned m = m0 + ty + 16 * i;
        if (m >= m_len) continue;
        unsigned co = g * m_len + m;
        float bias = p.has_bias == 1 ? ld(in_bias, co) : 0.0f;
        for (unsigned j = 0; j < 4; j++) {
            unsigned n = n0 + tx + 16 * j;
            if (n < n_len) {
                unsigned o = (img * out_channels + co) * n_len + n;
                float v = acc[i][j] + bias;
                if (p.has_residual == 1) v += ld(in_res, o);
                st(out, o, unary(v, p.act, p.act_a, p.act_b));
            }
        }
    }
}
