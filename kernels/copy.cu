// Data movement (as shaders/copy.wgsl): Concat, Split, Slice, Transpose, Expand,
// Pad and friends are all a strided copy of an up-to-8-d box:
// out[o_off + sum i_d os_d] = x[x_off + sum i_d xs_d]. Strides are signed
// (negative Slice steps); broadcast dimensions have stride 0.

struct CopyParams {
    unsigned dims[8];
    int x_strides[8], o_strides[8];
    unsigned len;
    int x_off, o_off;
    unsigned pad_;
};

extern "C" __global__ void __launch_bounds__(256)
strided_copy(const CopyParams p, const T* __restrict__ x, T* __restrict__ y) {
    const unsigned i = flat_id();
    if (i >= p.len) return;
    int xi = p.x_off, oi = p.o_off;
    unsigned rest = i;
#pragma unroll
    for (int d = 7; d >= 0; d--) {
        unsigned c = rest % p.dims[d];
        rest /= p.dims[d];
        xi += int(c) * p.x_strides[d];
        oi += int(c) * p.o_strides[d];
    }
    y[oi] = x[xi]; // raw storage elements: no conversion
}

struct FillParams {
    unsigned len;
    float value;
};

extern "C" __global__ void __launch_bounds__(256)
fill(const FillParams p, T* __restrict__ y) {
    const unsigned i = flat_id();
    if (i < p.len) st(y, i, p.value);
}
