// Elementwise kernels, one thread per output element (as shaders/elementwise.wgsl).

struct UnaryParams {
    unsigned len, code;
    float a, b;
};

extern "C" __global__ void __launch_bounds__(256)
unary_op(const UnaryParams p, const T* __restrict__ x, T* __restrict__ y) {
    const unsigned i = flat_id();
    if (i < p.len) st(y, i, unary(ld(x, i), p.code, p.a, p.b));
}

// Broadcasting binary op over up to 8 dimensions (leading ones 1): the output is
// contiguous, each operand is read through its own strides (0 where broadcast).
// `mode` 1 skips the index arithmetic when both operands have the output's shape.
struct BinaryParams {
    unsigned dims[8], a_strides[8], b_strides[8];
    unsigned len, code, mode, pad_;
};

extern "C" __global__ void __launch_bounds__(256)
binary_op(const BinaryParams p, const T* __restrict__ a, const T* __restrict__ b, T* __restrict__ y) {
    const unsigned i = flat_id();
    if (i >= p.len) return;
    unsigned ia = i, ib = i;
    if (p.mode == 0) {
        ia = 0;
        ib = 0;
        unsigned rest = i;
#pragma unroll
        for (int d = 7; d >= 0; d--) {
            unsigned c = rest % p.dims[d];
            rest /= p.dims[d];
            ia += c * p.a_strides[d];
            ib += c * p.b_strides[d];
        }
    }
    st(y, i, binary(ld(a, ia), ld(b, ib), p.code));
}

// A fused elementwise chain: per step [0] = op code (unary codes as in `unary`,
// binary ones + 256, + 512 when the operands are swapped), [1] = operand (0-5),
// [2] and [3] = the unary op's parameters (f32 bits). Bit k of `scalar_mask`:
// operand k holds a single element.
struct ChainParams {
    unsigned steps[16][4];
    unsigned len, count, scalar_mask, pad_;
};

extern "C" __global__ void __launch_bounds__(256)
chain(const ChainParams p, const T* __restrict__ x, const T* __restrict__ o0,
      const T* __restrict__ o1, const T* __restrict__ o2, const T* __restrict__ o3,
      const T* __restrict__ o4, const T* __restrict__ o5, T* __restrict__ y) {
    const unsigned i = flat_id();
    if (i >= p.len) return;
    const T* operands[6] = {o0, o1, o2, o3, o4, o5};
    float v = ld(x, i);
    for (unsigned s = 0; s < p.count; s++) {
        const unsigned op = p.steps[s][0];
        if (op < 256) {
            v = unary(v, op, __uint_as_float(p.steps[s][2]), __uint_as_float(p.steps[s][3]));
        } else {
            const unsigned k = p.steps[s][1];
            const float o = ld(operands[k], ((p.scalar_mask >> k) & 1u) ? 0u : i);
            v = op >= 512 ? binary(o, v, op - 512) : binary(v, o, op - 256);
        }
    }
    st(y, i, v);
}

// y = act(x * scale[c] + shift[c]), c = (i / inner) % channels; also the
// squeeze-excitation's scaling below.
struct AffineParams {
    unsigned len, inner, channels, act;
    float act_a, act_b;
};

extern "C" __global__ void __launch_bounds__(256)
channel_affine(const AffineParams p, const T* __restrict__ x, const T* __restrict__ scale,
               const T* __restrict__ shift, T* __restrict__ y) {
    const unsigned i = flat_id();
    if (i >= p.len) return;
    const unsigned c = (i / p.inner) % p.channels;
    st(y, i, unary(fmaf(ld(x, i), ld(scale, c), ld(shift, c)), p.act, p.act_a, p.act_b));
}

// y = x * gate[i / inner]: one gate per (image, channel) plane.
extern "C" __global__ void __launch_bounds__(256)
scale_planes(const AffineParams p, const T* __restrict__ x, const T* __restrict__ gate, T* __restrict__ y) {
    const unsigned i = flat_id();
    if (i < p.len) st(y, i, ld(x, i) * ld(gate, i / p.inner));
}
