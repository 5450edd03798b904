// The two small matrix-vector products of a squeeze-excitation block, between its
// global average pool and its channel scaling (as shaders/squeeze_excite.wgsl):
//   hidden[n][r] = act(b1[r] + sum_c w1[r][c] mean[n][c])
//   gate[n][c]   = act(b2[c] + sum_r w2[c][r] hidden[n][r])
// One thread per output; the vectors are short (tens to a few thousand).

struct DenseParams {
    // Outputs per image, inputs per output, images.
    unsigned outputs, inputs, images, has_bias, act;
    float act_a, act_b;
};

extern "C" __global__ void __launch_bounds__(64)
dense(const DenseParams p, const T* __restrict__ v, const T* __restrict__ w,
      const T* __restrict__ bias, T* __restrict__ y) {
    const unsigned i = flat_id();
    if (i >= p.outputs * p.images) return;
    const unsigned img = i / p.outputs, o = i - img * p.outputs;
    float acc = p.has_bias == 1 ? ld(bias, o) : 0.0f;
    for (unsigned c = 0; c < p.inputs; c++) acc = fmaf(ld(w, o * p.inputs + c), ld(v, img * p.inputs + c), acc);
    st(y, i, unary(acc, p.act, p.act_a, p.act_b));
}
