// CUDA-only: what follows a cuDNN convolution or a cuBLAS product that the library
// call did not fuse, in place on its output y:
//   y[i] = act(y[i] + beta * c[((i / inner) % outer) * s_outer + (i % inner) * s_inner] + res[i])
// A conv's bias is c with inner = the output plane, outer = channels, s_outer = 1,
// s_inner = 0; a Gemm's C is c with inner = n, outer = m and C's own strides.

struct EpilogueParams {
    unsigned len, inner, outer, s_outer, s_inner, has_c, has_residual, act;
    float beta, act_a, act_b;
    unsigned pad_;
};

extern "C" __global__ void __launch_bounds__(256)
epilogue(const EpilogueParams p, const T* __restrict__ c, const T* __restrict__ res, T* y) {
    const unsigned i = flat_id();
    if (i >= p.len) return;
    float v = ld(y, i);
    if (p.has_c == 1) v += p.beta * ld(c, ((i / p.inner) % p.outer) * p.s_outer + (i % p.inner) * p.s_inner);
    if (p.has_residual == 1) v += ld(res, i);
    st(y, i, unary(v, p.act, p.act_a, p.act_b));
}
