// Data movement: Concat, Split, Slice, Transpose, Expand, Pad and friends are all a
// strided copy of an up-to-8-d box: out[o_off + sum i_d os_d] = x[x_off + sum i_d xs_d].
// Strides are signed (negative Slice steps); broadcast dimensions have stride 0.

struct CopyParams {
    dims_lo: vec4<u32>,
    dims_hi: vec4<u32>,
    x_lo: vec4<i32>,
    x_hi: vec4<i32>,
    o_lo: vec4<i32>,
    o_hi: vec4<i32>,
    len: u32,
    x_off: i32,
    o_off: i32,
}

struct FillParams {
    len: u32,
    value: f32,
}

@group(0) @binding(0) var<uniform> p: CopyParams;
@group(0) @binding(1) var<storage, read> x: array<T>;
@group(0) @binding(2) var<storage, read_write> y: array<T>;

@compute @workgroup_size(256)
fn strided_copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if i >= p.len {
        return;
    }
    var xi = p.x_off;
    var oi = p.o_off;
    var rest = i;
    for (var d = 3; d >= 0; d--) {
        let c = rest % p.dims_hi[d];
        rest = rest / p.dims_hi[d];
        xi += i32(c) * p.x_hi[d];
        oi += i32(c) * p.o_hi[d];
    }
    for (var d = 3; d >= 0; d--) {
        let c = rest % p.dims_lo[d];
        rest = rest / p.dims_lo[d];
        xi += i32(c) * p.x_lo[d];
        oi += i32(c) * p.o_lo[d];
    }
    y[oi] = x[xi];
}

@group(0) @binding(0) var<uniform> fp: FillParams;
@group(0) @binding(1) var<storage, read_write> fy: array<T>;

@compute @workgroup_size(256)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = flat_id(wg, nwg, li, 256u);
    if i < fp.len {
        fy[i] = T(fp.value);
    }
}
