// Sliding-window kernels on NCHW planes, one thread per output element (as
// shaders/window.wgsl): depthwise convolution and local pooling. 1-D windows run
// as H = 1. `Plane` is defined in gemm.cu.

struct WindowParams {
    unsigned planes;
    Plane pl;
    // Depthwise: output channels, and output channels per input channel.
    unsigned channels, multiplier, has_bias, has_residual, act;
    float act_a, act_b;
    // Pooling: 0 max, 1 average; for the average, whether padding counts.
    unsigned kind, count_include_pad;
};

// Output element i of plane (image, co) reads input plane (image, co / multiplier)
// through the weights w[co][ky][kx].
extern "C" __global__ void __launch_bounds__(256)
depthwise(const WindowParams p, const T* __restrict__ x, const T* __restrict__ w,
          const T* __restrict__ bias, const T* __restrict__ res, T* __restrict__ y) {
    const unsigned i = flat_id();
    const unsigned plane_out = p.pl.oh * p.pl.ow;
    if (i >= p.planes * plane_out) return;
    const unsigned plane = i / plane_out, pos = i - plane * plane_out;
    const unsigned oy = pos / p.pl.ow, ox = pos - oy * p.pl.ow;
    const unsigned co = plane % p.channels, img = plane / p.channels;
    const unsigned in_channels = p.channels / p.multiplier;
    const unsigned x_off = (img * in_channels + co / p.multiplier) * p.pl.h * p.pl.w;
    const unsigned w_off = co * p.pl.kh * p.pl.kw;
    float acc = 0.0f;
    for (unsigned ky = 0; ky < p.pl.kh; ky++) {
        int iy = int(oy * p.pl.stride_h + ky * p.pl.dil_h) - int(p.pl.pad_h);
        if (iy < 0 || iy >= int(p.pl.h)) continue;
        for (unsigned kx = 0; kx < p.pl.kw; kx++) {
            int ix = int(ox * p.pl.stride_w + kx * p.pl.dil_w) - int(p.pl.pad_w);
            if (ix >= 0 && ix < int(p.pl.w))
                acc = fmaf(ld(x, x_off + unsigned(iy) * p.pl.w + unsigned(ix)), ld(w, w_off + ky * p.pl.kw + kx), acc);
        }
    }
    if (p.has_bias == 1) acc += ld(bias, co);
    if (p.has_residual == 1) acc += ld(res, i);
    st(y, i, unary(acc, p.act, p.act_a, p.act_b));
}

extern "C" __global__ void __launch_bounds__(256)
pool(const WindowParams p, const T* __restrict__ x, T* __restrict__ y) {
    const unsigned i = flat_id();
    const unsigned plane_out = p.pl.oh * p.pl.ow;
    if (i >= p.planes * plane_out) return;
    const unsigned plane = i / plane_out, pos = i - plane * plane_out;
    const unsigned oy = pos / p.pl.ow, ox = pos - oy * p.pl.ow;
    const unsigned x_off = plane * p.pl.h * p.pl.w;
    float best = -k_inf(), sum = 0.0f;
    unsigned inside = 0, padded = 0;
    for (unsigned ky = 0; ky < p.pl.kh; ky++) {
        unsigned py = oy * p.pl.stride_h + ky * p.pl.dil_h;
        int iy = int(py) - int(p.pl.pad_h);
        for (unsigned kx = 0; kx < p.pl.kw; kx++) {
            unsigned px = ox * p.pl.stride_w + kx * p.pl.dil_w;
            int ix = int(px) - int(p.pl.pad_w);
            if (py < p.pl.padded_h && px < p.pl.padded_w) padded++;
            if (iy >= 0 && iy < int(p.pl.h) && ix >= 0 && ix < int(p.pl.w)) {
                float v = ld(x, x_off + unsigned(iy) * p.pl.w + unsigned(ix));
                best = fmaxf(best, v);
                sum += v;
                inside++;
            }
        }
    }
    if (p.kind == 0) {
        st(y, i, best);
    } else {
        unsigned count = p.count_include_pad == 1 ? padded : inside;
        st(y, i, sum / float(count > 0 ? count : 1));
    }
}
