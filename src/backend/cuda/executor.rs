//! Runs a [`Plan`] of [`CudaKernel`]s. Everything is placed once per plan: one
//! device arena (activation slots, caller inputs, constants, weights, scratch),
//! pinned host staging for inputs and outputs, cuDNN algorithms timed on the real
//! buffers. A run copies the inputs into pinned memory, then replays one CUDA
//! graph (input copies, every kernel and library call, output copies) and waits.
//! The first run is enqueued eagerly (libraries finish initialising there); the
//! second is captured into the graph that later runs replay.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use cudarc::driver::{result, sys, CudaGraph};
use half::f16;

use super::cublas::BlasGemm;
use super::cudnn::CudnnConv;
use super::device::{device_error, Cuda};
use super::memory::{DeviceBuffer, PinnedBuffer, ALIGN};
use super::prepare::{ConvCall, CudaKernel, GemmCall};
use super::{source, Precision};
use crate::backend::gpu::codes::UnaryCode;
use crate::backend::gpu::program::grid_1d;
use crate::backend::gpu::{Bind, BufferId, GpuKernel};
use crate::error::{Error, Result};
use crate::plan::{Loc, Plan, Step};
use crate::tensor::{DType, Tensor};

/// A plan whose steps run on CUDA.
pub type CudaPlan = Plan<CudaKernel>;

/// Most workspace cuDNN may use per convolution while algorithms are timed.
const CUDNN_WORKSPACE_LIMIT: usize = 256 << 20;

/// `EpilogueParams` in kernels/epilogue.cu.
#[repr(C)]
#[derive(Copy, Clone, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct EpilogueParams {
    len: u32,
    inner: u32,
    outer: u32,
    s_outer: u32,
    s_inner: u32,
    has_c: u32,
    has_residual: u32,
    act: u32,
    beta: f32,
    act_a: f32,
    act_b: f32,
    _pad: u32,
}

/// One kernel launch with its arguments resolved to device addresses.
struct Launch {
    function: sys::CUfunction,
    grid: (u32, u32, u32),
    block: (u32, u32, u32),
    /// The parameter block, as 4-byte words (every field is 4 bytes).
    params: Vec<u32>,
    buffers: Vec<sys::CUdeviceptr>,
}

// SAFETY: a CUfunction is an immutable driver handle, valid on any thread that
// binds its context (runs bind it first); the rest is plain data.
unsafe impl Send for Launch {}
// SAFETY: as above; launching only reads the handle.
unsafe impl Sync for Launch {}

impl Launch {
    /// # Safety
    /// The buffers must be live and large enough for what the kernel touches
    /// (the executor sizes them from the same plan the launch came from).
    unsafe fn enqueue(&self, stream: sys::CUstream) -> Result<()> {
        let mut args: Vec<*mut c_void> = Vec::with_capacity(1 + self.buffers.len());
        args.push(self.params.as_ptr() as *mut c_void);
        for b in &self.buffers {
            args.push(b as *const sys::CUdeviceptr as *mut c_void);
        }
        result::launch_kernel(self.function, self.grid, self.block, 0, stream, &mut args)
            .map_err(|e| device_error("launching a kernel", e))
    }
}

enum DeviceOp {
    Launch(Launch),
    Conv {
        conv: CudnnConv,
        /// x, w, y.
        buffers: [sys::CUdeviceptr; 3],
        epilogue: Option<Launch>,
    },
    Gemm {
        gemm: BlasGemm,
        /// a, b, y.
        buffers: [sys::CUdeviceptr; 3],
        epilogue: Option<Launch>,
    },
}

/// How one graph output comes back.
enum OutputSource {
    /// `len` elements at byte `host` of the output staging, copied from `device`.
    Device {
        host: usize,
        len: usize,
        shape: Vec<usize>,
    },
    Const(usize),
    Input {
        index: usize,
        shape: Vec<usize>,
    },
}

/// A caller input the kernels read: staged at byte `host`, copied to `device`.
struct StagedInput {
    index: usize,
    len: usize,
    host: usize,
    device: sys::CUdeviceptr,
}

struct GraphExec(CudaGraph);
// SAFETY: the graph is only launched under the program's state lock.
unsafe impl Send for GraphExec {}

struct RunState {
    inputs: PinnedBuffer,
    outputs: PinnedBuffer,
    graph: Option<GraphExec>,
    runs: usize,
    /// Why capture failed, if it did: runs then stay eager.
    graph_error: Option<String>,
}

/// A plan made resident on one CUDA device.
pub struct CudaProgram {
    cuda: Arc<Cuda>,
    plan: CudaPlan,
    ops: Vec<DeviceOp>,
    staged: Vec<StagedInput>,
    /// (device address, staging byte offset, bytes) per device output.
    readbacks: Vec<(sys::CUdeviceptr, usize, usize)>,
    outputs: Vec<OutputSource>,
    state: Mutex<RunState>,
    workspace: Option<DeviceBuffer>,
    arena: DeviceBuffer,
}

/// Byte offsets in the arena, each aligned to [`ALIGN`].
#[derive(Default)]
struct Layout {
    bytes: usize,
}

impl Layout {
    fn take(&mut self, bytes: usize) -> usize {
        let at = self.bytes;
        self.bytes += bytes.max(1).next_multiple_of(ALIGN);
        at
    }
}

/// The buffers of step number `s` that its device code reads or writes: a library
/// kernel's bindings (resolved as at launch, so a `Split`'s sizes or a `Reshape`'s
/// shape, int64 constants read at prepare, stay on the host), or every input of
/// a cuDNN or cuBLAS call.
fn device_buffers(s: usize, step: &Step<CudaKernel>) -> Result<Vec<BufferId>> {
    match &step.kernel {
        CudaKernel::Library(k) => k
            .dispatches
            .iter()
            .flat_map(|d| d.reads.iter().chain(&d.writes))
            .map(|&b| BufferId::of_bind(b, s, step))
            .collect(),
        CudaKernel::Conv(_) | CudaKernel::Gemm(_) => {
            Ok(step.inputs.iter().flatten().map(BufferId::of_loc).collect())
        }
    }
}

/// f32 data as stored on the device in `precision`.
fn encode(precision: Precision, data: &[f32], out: &mut [u8]) {
    if precision.stores_f16() {
        for (o, v) in out.chunks_exact_mut(2).zip(data) {
            o.copy_from_slice(&f16::from_f32(*v).to_le_bytes());
        }
    } else {
        out[..data.len() * 4].copy_from_slice(bytemuck::cast_slice(data));
    }
}

fn decode(precision: Precision, bytes: &[u8], len: usize) -> Vec<f32> {
    if precision.stores_f16() {
        bytes[..len * 2]
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()
    } else {
        bytes[..len * 4]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

fn params_words(bytes: &[u8]) -> Result<Vec<u32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(Error::invalid("internal: a parameter block is not 4-byte words"));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

impl CudaProgram {
    /// Places everything `plan` needs on the device and chooses cuDNN algorithms.
    pub fn new(cuda: Arc<Cuda>, plan: CudaPlan, inputs: &[Tensor]) -> Result<CudaProgram> {
        let esize = cuda.precision.element_bytes();
        cuda.ctx
            .bind_to_thread()
            .map_err(|e| device_error("binding the context", e))?;
        let _device = cuda.exclusive();

        // 1. Lay out the arena.
        let mut layout = Layout::default();
        let mut at: HashMap<BufferId, usize> = HashMap::new();
        for (i, s) in plan.slots.iter().enumerate() {
            if s.dtype != DType::F32 {
                return Err(Error::invalid(format!(
                    "internal: {} arena slot on the GPU",
                    s.dtype
                )));
            }
            at.insert(BufferId::Slot(i), layout.take(s.len * esize));
        }
        at.insert(BufferId::Dummy, layout.take(ALIGN));
        let mut uploads: Vec<(usize, Vec<f32>)> = Vec::new();
        for (s, step) in plan.steps.iter().enumerate() {
            for id in device_buffers(s, step)? {
                if at.contains_key(&id) {
                    continue;
                }
                match id {
                    BufferId::Input(index) => {
                        let t = inputs
                            .get(index)
                            .ok_or_else(|| Error::invalid("internal: missing plan input"))?;
                        at.insert(id, layout.take(t.len() * esize));
                    }
                    BufferId::Const(c) => {
                        let t = &plan.constants[c];
                        let data = t.typed::<f32>().map_err(|_| {
                            Error::invalid(format!("internal: a {} constant bound on the GPU", t.dtype()))
                        })?;
                        let off = layout.take(data.len() * esize);
                        at.insert(id, off);
                        uploads.push((off, data.to_vec()));
                    }
                    // Slots and the dummy are laid out above, a library kernel's
                    // weights and scratch just below.
                    _ => {}
                }
            }
            if let CudaKernel::Library(k) = &step.kernel {
                for (index, w) in k.weights.iter().enumerate() {
                    let off = layout.take(w.len() * esize);
                    at.insert(BufferId::Weight { step: s, index }, off);
                    uploads.push((off, w.clone()));
                }
                for (index, &len) in k.scratch.iter().enumerate() {
                    at.insert(BufferId::Scratch { step: s, index }, layout.take(len * esize));
                }
            }
        }

        // 2. Allocate it, poisoned (all bits set: NaN in f32 and f16) so that an
        // element no kernel writes fails any comparison, then upload constants.
        let arena = DeviceBuffer::new(&cuda.ctx, layout.bytes)?;
        let stream = cuda.cu_stream();
        let mut host = Vec::new();
        // SAFETY: the arena holds `layout.bytes`; every upload lies inside it
        // (offsets from the same layout) and the host data outlives the copy (the
        // stream is synchronised before `host` is dropped).
        unsafe {
            result::memset_d8_async(arena.ptr(), 0xff, layout.bytes, stream)
                .map_err(|e| device_error("poisoning the arena", e))?;
            for (off, data) in &uploads {
                host.resize(data.len() * esize, 0);
                encode(cuda.precision, data, &mut host);
                result::memcpy_htod_async(arena.ptr() + *off as u64, &host[..], stream)
                    .map_err(|e| device_error("uploading weights", e))?;
                result::stream::synchronize(stream).map_err(|e| device_error("uploading weights", e))?;
            }
        }
        let addr = |id: BufferId| -> Result<sys::CUdeviceptr> {
            at.get(&id)
                .map(|off| arena.ptr() + *off as u64)
                .ok_or_else(|| Error::invalid(format!("internal: {id:?} has no place in the arena")))
        };

        // 3. Resolve every step's launches and library calls.
        let mut ops = Vec::new();
        let mut workspace_needed = 0usize;
        let mut find_workspace: Option<DeviceBuffer> = None;
        for (s, step) in plan.steps.iter().enumerate() {
            let bind = |b: Bind| -> Result<sys::CUdeviceptr> { addr(BufferId::of_bind(b, s, step)?) };
            match &step.kernel {
                CudaKernel::Library(k) => {
                    for launch in library_launches(&cuda, k, &bind)? {
                        ops.push(DeviceOp::Launch(launch));
                    }
                }
                CudaKernel::Conv(call) => {
                    let dnn = cuda
                        .dnn
                        .as_ref()
                        .ok_or_else(|| Error::invalid("internal: a cuDNN conv without cuDNN"))?;
                    let buffers = [
                        bind(Bind::Input(0))?,
                        bind(Bind::Input(1))?,
                        bind(Bind::Output(0))?,
                    ];
                    let mut conv = CudnnConv::new(call, cuda.precision)?;
                    if find_workspace.is_none() {
                        find_workspace = Some(DeviceBuffer::new(&cuda.ctx, CUDNN_WORKSPACE_LIMIT)?);
                    }
                    let ws = find_workspace.as_ref().map(|w| w.ptr()).unwrap_or_default();
                    conv.choose(dnn, buffers, ws, CUDNN_WORKSPACE_LIMIT)?;
                    workspace_needed = workspace_needed.max(conv.workspace);
                    let epilogue = conv_epilogue(&cuda, call, &bind)?;
                    ops.push(DeviceOp::Conv {
                        conv,
                        buffers,
                        epilogue,
                    });
                }
                CudaKernel::Gemm(call) => {
                    let buffers = [
                        bind(Bind::Input(0))?,
                        bind(Bind::Input(1))?,
                        bind(Bind::Output(0))?,
                    ];
                    let epilogue = gemm_epilogue(&cuda, call, &bind)?;
                    ops.push(DeviceOp::Gemm {
                        gemm: BlasGemm {
                            call: call.clone(),
                            precision: cuda.precision,
                        },
                        buffers,
                        epilogue,
                    });
                }
            }
        }
        drop(find_workspace);
        let workspace = if workspace_needed > 0 {
            Some(DeviceBuffer::new(&cuda.ctx, workspace_needed)?)
        } else {
            None
        };

        // 4. Staging for inputs and outputs.
        let mut staged = Vec::new();
        let mut in_bytes = 0;
        for (id, off) in &at {
            if let BufferId::Input(index) = *id {
                let len = inputs[index].len();
                staged.push(StagedInput {
                    index,
                    len,
                    host: in_bytes,
                    device: arena.ptr() + *off as u64,
                });
                in_bytes += (len * esize).next_multiple_of(ALIGN);
            }
        }
        staged.sort_by_key(|s| s.index);
        let mut outputs = Vec::new();
        let mut readbacks = Vec::new();
        let mut out_bytes = 0;
        for loc in &plan.outputs {
            outputs.push(match loc {
                Loc::Slot { slot, shape } => {
                    let len: usize = shape.iter().product();
                    let host = out_bytes;
                    out_bytes += (len * esize).next_multiple_of(ALIGN);
                    readbacks.push((addr(BufferId::Slot(*slot))?, host, len * esize));
                    OutputSource::Device {
                        host,
                        len,
                        shape: shape.clone(),
                    }
                }
                Loc::Const(c) => OutputSource::Const(*c),
                Loc::Input { index, shape } => OutputSource::Input {
                    index: *index,
                    shape: shape.clone(),
                },
            });
        }
        let state = RunState {
            inputs: PinnedBuffer::new(&cuda.ctx, in_bytes)?,
            outputs: PinnedBuffer::new(&cuda.ctx, out_bytes)?,
            graph: None,
            runs: 0,
            graph_error: None,
        };
        drop(_device);
        Ok(CudaProgram {
            cuda,
            plan,
            ops,
            staged,
            readbacks,
            outputs,
            state: Mutex::new(state),
            workspace,
            arena,
        })
    }

    pub fn plan(&self) -> &CudaPlan {
        &self.plan
    }

    /// Device memory the program holds: the arena (activations, inputs, weights)
    /// and the cuDNN workspace.
    pub fn device_bytes(&self) -> usize {
        self.arena.bytes() + self.workspace.as_ref().map_or(0, DeviceBuffer::bytes)
    }

    /// Why runs are not replayed from a CUDA graph, if they are not.
    pub fn graph_error(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.graph_error.clone())
    }

    /// Runs the program on `inputs` (already checked against the plan's shapes).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let cuda = &self.cuda;
        cuda.ctx
            .bind_to_thread()
            .map_err(|e| device_error("binding the context", e))?;
        let _device = cuda.exclusive();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *state;
        let esize = cuda.precision.element_bytes();
        for s in &self.staged {
            let t = inputs
                .get(s.index)
                .ok_or_else(|| Error::invalid("internal: missing run input"))?;
            let data = t
                .typed::<f32>()
                .map_err(|_| Error::invalid(format!("internal: a {} input on the GPU", t.dtype())))?;
            encode(
                cuda.precision,
                &data[..s.len],
                &mut state.inputs.as_mut_slice()[s.host..s.host + s.len * esize],
            );
        }
        let stream = cuda.cu_stream();
        if state.graph.is_none() && state.runs == 1 && state.graph_error.is_none() {
            match self.capture(state) {
                Ok(graph) => state.graph = Some(GraphExec(graph)),
                Err(e) => state.graph_error = Some(e.to_string()),
            }
        }
        match &state.graph {
            Some(g) => {
                g.0.launch()
                    .map_err(|e| device_error("launching the CUDA graph", e))?
            }
            None => self.enqueue(state)?,
        }
        // SAFETY: waits for the work enqueued above on our own stream.
        unsafe { result::stream::synchronize(stream) }.map_err(|e| device_error("running the model", e))?;
        state.runs += 1;

        let mut out = Vec::with_capacity(self.outputs.len());
        for o in &self.outputs {
            out.push(match o {
                OutputSource::Device { host, len, shape } => Tensor::from_vec(
                    shape.clone(),
                    decode(cuda.precision, &state.outputs.as_slice()[*host..], *len),
                )?,
                OutputSource::Const(c) => self.plan.constants[*c].clone(),
                OutputSource::Input { index, shape } => inputs[*index].clone().reshaped(shape.clone())?,
            });
        }
        Ok(out)
    }

    /// Records one run's work into a CUDA graph.
    fn capture(&self, state: &mut RunState) -> Result<CudaGraph> {
        let stream = &self.cuda.stream;
        stream
            .begin_capture(sys::CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_THREAD_LOCAL)
            .map_err(|e| device_error("starting graph capture", e))?;
        let enqueued = self.enqueue(state);
        // Capture must end whatever happened, or the stream stays in capture mode.
        let graph = stream.end_capture(sys::CUgraphInstantiate_flags(0));
        enqueued?;
        graph
            .map_err(|e| device_error("instantiating the CUDA graph", e))?
            .ok_or_else(|| Error::Device("graph capture recorded nothing".into()))
    }

    /// Enqueues one run: input copies, every op, output copies.
    fn enqueue(&self, state: &mut RunState) -> Result<()> {
        let cuda = &self.cuda;
        let stream = cuda.cu_stream();
        let esize = cuda.precision.element_bytes();
        let workspace = self.workspace.as_ref().map(|w| w.ptr()).unwrap_or_default();
        // SAFETY: every address comes from this program's arena layout, sized from
        // the plan; the pinned staging outlives the work (runs synchronise before
        // returning, and the graph replays into the same staging).
        unsafe {
            for s in &self.staged {
                let src = &state.inputs.as_slice()[s.host..s.host + s.len * esize];
                result::memcpy_htod_async(s.device, src, stream)
                    .map_err(|e| device_error("copying inputs to the GPU", e))?;
            }
            for op in &self.ops {
                match op {
                    DeviceOp::Launch(l) => l.enqueue(stream)?,
                    DeviceOp::Conv {
                        conv,
                        buffers,
                        epilogue,
                    } => {
                        let dnn = cuda
                            .dnn
                            .as_ref()
                            .ok_or_else(|| Error::invalid("internal: no cuDNN"))?;
                        conv.enqueue(dnn, *buffers, workspace)?;
                        if let Some(e) = epilogue {
                            e.enqueue(stream)?;
                        }
                    }
                    DeviceOp::Gemm {
                        gemm,
                        buffers,
                        epilogue,
                    } => {
                        let blas = cuda
                            .blas
                            .as_ref()
                            .ok_or_else(|| Error::invalid("internal: no cuBLAS"))?;
                        gemm.enqueue(blas, buffers[0], buffers[1], buffers[2])?;
                        if let Some(e) = epilogue {
                            e.enqueue(stream)?;
                        }
                    }
                }
            }
            for &(device, host, bytes) in &self.readbacks {
                let dst = &mut state.outputs.as_mut_slice()[host..host + bytes];
                result::memcpy_dtoh_async(dst, device, stream)
                    .map_err(|e| device_error("copying outputs from the GPU", e))?;
            }
        }
        Ok(())
    }
}

fn library_launches(
    cuda: &Cuda,
    k: &GpuKernel,
    bind: &dyn Fn(Bind) -> Result<sys::CUdeviceptr>,
) -> Result<Vec<Launch>> {
    let mut launches = Vec::with_capacity(k.dispatches.len());
    for d in &k.dispatches {
        d.check_bindings()?;
        let (bx, by) = d.entry.group_size();
        launches.push(Launch {
            function: cuda.function(d.entry.name())?,
            grid: (d.groups[0], d.groups[1], d.groups[2]),
            block: (bx, by, 1),
            params: params_words(&d.params)?,
            buffers: d
                .reads
                .iter()
                .chain(&d.writes)
                .map(|&b| bind(b))
                .collect::<Result<_>>()?,
        });
    }
    Ok(launches)
}

fn epilogue_launch(
    cuda: &Cuda,
    p: EpilogueParams,
    c: sys::CUdeviceptr,
    residual: sys::CUdeviceptr,
    y: sys::CUdeviceptr,
) -> Result<Launch> {
    let g = grid_1d(p.len as usize, 256)?;
    Ok(Launch {
        function: cuda.function(source::EPILOGUE)?,
        grid: (g[0], g[1], g[2]),
        block: (256, 1, 1),
        params: params_words(bytemuck::bytes_of(&p))?,
        buffers: vec![c, residual, y],
    })
}

fn u32_of(v: usize) -> Result<u32> {
    crate::backend::gpu::program::u32_param(v)
}

/// Bias, residual and activation after a cuDNN convolution, if any.
fn conv_epilogue(
    cuda: &Cuda,
    call: &ConvCall,
    bind: &dyn Fn(Bind) -> Result<sys::CUdeviceptr>,
) -> Result<Option<Launch>> {
    if !call.needs_epilogue() {
        return Ok(None);
    }
    let plane = call.out_hw[0] * call.out_hw[1];
    let act = call.activation;
    let p = EpilogueParams {
        len: u32_of(call.batch * call.out_channels * plane)?,
        inner: u32_of(plane)?,
        outer: u32_of(call.out_channels)?,
        s_outer: 1,
        s_inner: 0,
        has_c: call.has_bias.into(),
        has_residual: call.residual.into(),
        act: act.code,
        beta: 1.0,
        act_a: act.a,
        act_b: act.b,
        _pad: 0,
    };
    let opt = |present: bool, b: Bind| if present { bind(b) } else { bind(Bind::Unused) };
    Ok(Some(epilogue_launch(
        cuda,
        p,
        opt(call.has_bias, Bind::Input(2))?,
        opt(call.residual, Bind::Input(3))?,
        bind(Bind::Output(0))?,
    )?))
}

/// `beta * C` after a cuBLAS product, if the Gemm has a C.
fn gemm_epilogue(
    cuda: &Cuda,
    call: &GemmCall,
    bind: &dyn Fn(Bind) -> Result<sys::CUdeviceptr>,
) -> Result<Option<Launch>> {
    let Some([s_outer, s_inner]) = call.c_strides else {
        return Ok(None);
    };
    let act = UnaryCode::IDENTITY;
    let p = EpilogueParams {
        len: u32_of(call.m * call.n)?,
        inner: u32_of(call.n)?,
        outer: u32_of(call.m)?,
        s_outer: u32_of(s_outer)?,
        s_inner: u32_of(s_inner)?,
        has_c: 1,
        has_residual: 0,
        act: act.code,
        beta: call.beta,
        act_a: act.a,
        act_b: act.b,
        _pad: 0,
    };
    Ok(Some(epilogue_launch(
        cuda,
        p,
        bind(Bind::Input(2))?,
        bind(Bind::Unused)?,
        bind(Bind::Output(0))?,
    )?))
}
