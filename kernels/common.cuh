// Helpers shared by every kiln CUDA kernel, mirroring shaders/common.wgsl: the
// backend compiles this file, then the family files, as one NVRTC program per
// storage precision. Storage holds `T`; arithmetic is always f32, so the f16 mode
// only rounds on stores (as on wgpu).
//
// Every entry point takes its parameter block by value first (the `#[repr(C)]`
// struct of the same name in src/backend/gpu/prepare/, byte for byte), then its
// read-only buffers, then the ones it writes: the binding order of the WGSL entry
// of the same name. Grids and block sizes come from `Entry` in
// src/backend/gpu/entry.rs.

#ifdef KILN_F16
// Half-precision storage as raw bits: NVRTC then needs no toolkit headers.
typedef unsigned short T;
__device__ __forceinline__ float ld(const T* p, unsigned i) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(p[i]));
    return f;
}
__device__ __forceinline__ void st(T* p, unsigned i, float v) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    p[i] = h;
}
#else
typedef float T;
__device__ __forceinline__ float ld(const T* p, unsigned i) { return p[i]; }
__device__ __forceinline__ void st(T* p, unsigned i, float v) { p[i] = v; }
#endif

// Invocation number of a 1-D kernel (grids are folded into x and y: one grid
// dimension holds at most 65535 blocks on WebGPU, and the grids are shared).
__device__ __forceinline__ unsigned flat_id() {
    return (blockIdx.y * gridDim.x + blockIdx.x) * blockDim.x + threadIdx.x;
}

// Block number of a kernel that runs one block per row.
__device__ __forceinline__ unsigned flat_group() {
    return blockIdx.y * gridDim.x + blockIdx.x;
}

__device__ __forceinline__ float k_inf() { return __int_as_float(0x7f800000); }
__device__ __forceinline__ float k_nan() { return __int_as_float(0x7fc00000); }

__device__ __forceinline__ float k_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

__device__ __forceinline__ float k_sign(float x) {
    return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : x);
}

// erf(x) = x P(x^2) / Q(x^2) on [-4, 4], +-1 beyond: kiln's fit, as on the CPU and
// in common.wgsl (max relative error 4e-7), so every backend rounds alike.
__device__ float erf_fit(float x0) {
    float x = fminf(fmaxf(x0, -4.0f), 4.0f);
    float t = x * x;
    float p = 1.943761588829568e-8f;
    p = p * t - 1.9383910538802803e-6f;
    p = p * t + 0.00014302604967117463f;
    p = p * t + 0.003792130709771547f;
    p = p * t + 0.05088058347554263f;
    p = p * t + 0.20233908665087516f;
    p = p * t + 1.1283791109995696f;
    float q = 0.0009747479083594791f;
    q = q * t + 0.014547716102382185f;
    q = q * t + 0.11598402445775707f;
    q = q * t + 0.5126500244263351f;
    q = q * t + 1.0f;
    return x * p / q;
}

// Unary functions by code (`UnaryCode` in src/backend/gpu/codes.rs); `a` and `b`
// are the op's parameters.
__device__ float unary(float x, unsigned code, float a, float b) {
    switch (code) {
    case 0: return x;
    case 1: return fmaxf(x, 0.0f);
    case 2: return fminf(fmaxf(x, a), b);
    case 3: return x < 0.0f ? a * x : x;
    case 4: return k_sigmoid(x);
    case 5: return fminf(fmaxf(a * x + b, 0.0f), 1.0f);
    case 6: return x * fminf(fmaxf(x * (1.0f / 6.0f) + 0.5f, 0.0f), 1.0f);
    case 7: return x / (1.0f + expf(-x));
    case 8: return tanhf(x);
    case 9: return expf(x);
    case 10: return logf(x);
    case 11: return sqrtf(x);
    case 12: return fabsf(x);
    case 13: return -x;
    case 14: return erf_fit(x);
    case 15: return 1.0f / x;
    case 16: return floorf(x);
    case 17: return ceilf(x);
    case 18: return rintf(x); // half to even, as ONNX Round
    case 19: return k_sign(x);
    case 20: return sinf(x);
    case 21: return cosf(x);
    // ln(1 + e^x) without overflow for large x.
    case 22: return fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
    case 23: return x / (1.0f + fabsf(x));
    case 24: return x < 0.0f ? a * (expf(x) - 1.0f) : x;
    case 25: return x > 0.0f ? b * x : b * (a * expf(x) - a);
    case 26: return x > 0.0f ? x : a * (expf(x / a) - 1.0f);
    case 27: return 0.5f * x * (1.0f + erf_fit(x * 0.7071067811865476f));
    // x * sigmoid(2z), z = sqrt(2/pi) (x + 0.044715 x^3): tanh-approximated GELU.
    case 28: return x / (1.0f + expf(-2.0f * 0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case 29: return fmaf(a, x, b);
    default: return k_nan();
    }
}

// x^y as ONNX defines it on floats: negative bases with integral exponents allowed.
__device__ float pow_onnx(float x, float y) {
    if (y == 0.0f) return 1.0f;
    if (x == 0.0f) return y < 0.0f ? k_inf() : 0.0f;
    float r = exp2f(y * log2f(fabsf(x)));
    if (x > 0.0f) return r;
    if (floorf(y) != y) return k_nan();
    return fmodf(fabsf(y), 2.0f) == 1.0f ? -r : r;
}

// Binary functions by code (`binary_code` in src/backend/gpu/codes.rs).
__device__ float binary(float x, float y, unsigned code) {
    switch (code) {
    case 0: return x + y;
    case 1: return x - y;
    case 2: return x * y;
    case 3: return x / y;
    case 4: return pow_onnx(x, y);
    case 5: return fmaxf(x, y);
    case 6: return fminf(x, y);
    case 7: return x < 0.0f ? x * y : x;
    default: return k_nan();
    }
}
