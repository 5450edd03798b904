// The tile machinery of the matrix-product kernels (gemm.wgsl, conv.wgsl), which
// the backend prepends to them.
//
// A workgroup of 16x16 invocations computes a 64x64 block of C, each invocation a
// 4x4 register block (rows ty + 16i, columns tx + 16j, so neighbouring invocations
// store neighbouring columns). K is walked 16 at a time through workgroup memory:
// each of the 256 invocations loads 4 elements of each tile per step.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> tile_a: array<f32, 1024>; // [BK][BM]
var<workgroup> tile_b: array<f32, 1024>; // [BK][BN]

// Multiplies the two tiles in workgroup memory into the register block.
fn tile_product(acc: ptr<function, array<array<f32, 4>, 4>>, tx: u32, ty: u32) {
    for (var kk = 0u; kk < BK; kk++) {
        var av: array<f32, 4>;
        var bv: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
            av[i] = tile_a[kk * BM + ty + 16u * i];
            bv[i] = tile_b[kk * BN + tx + 16u * i];
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                (*acc)[i][j] = fma(av[i], bv[j], (*acc)[i][j]);
            }
        }
    }
}

