//! The public API: load a model once, run it many times, from any thread.
//!
//! ```no_run
//! use kiln::{Session, SessionOptions, Tensor};
//! let session = Session::from_file("resnet50.onnx", SessionOptions::default())?;
//! let input = Tensor::from_vec(vec![1, 3, 224, 224], vec![0.5f32; 3 * 224 * 224])?;
//! let outputs = session.run(&[input])?;
//! println!("{:?}", outputs[0].shape());
//! # Ok::<(), kiln::Error>(())
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::backend::cpu::affinity::{self, Pinning};
use crate::backend::cpu::awake::StayAwake;
use crate::backend::cpu::executor::{self, Arena};
use crate::backend::cpu::CpuOptions;
use crate::backend::cpu::CpuPlan;
use crate::backend::Precision;
use crate::error::{Error, Result};
use crate::ir::{graph::shape_string, Dim, Graph};
use crate::onnx::{self, Limits};
use crate::plan;
use crate::tensor::{SharedBytes, Tensor};

/// Where a session's kernels run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    #[default]
    Cpu,
    /// Any GPU, through wgpu (cargo feature `wgpu`).
    Wgpu,
    /// NVIDIA GPUs through CUDA, cuDNN and cuBLAS (cargo feature `cuda`).
    Cuda,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Backend> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "wgpu" => Ok(Backend::Wgpu),
            "cuda" => Ok(Backend::Cuda),
            other => Err(Error::Usage(format!(
                "unknown backend '{other}' (known: cpu, wgpu, cuda)"
            ))),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        })
    }
}

#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub backend: Backend,
    /// Worker threads; `None` = one per available core.
    pub threads: Option<usize>,
    /// Whether the workers are pinned to CPUs (by default, when there is one
    /// worker per CPU; see [`Pinning`]).
    pub pinning: Pinning,
    /// Run the graph optimizer (`false` runs the graph exactly as loaded).
    pub optimize: bool,
    pub limits: Limits,
    /// CPU kernel algorithm choices.
    pub cpu: CpuOptions,
    /// Storage precision on GPU backends (the CPU backend computes f32 only).
    pub precision: Precision,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            backend: Backend::Cpu,
            threads: None,
            pinning: Pinning::Auto,
            optimize: true,
            limits: Limits::default(),
            cpu: CpuOptions::default(),
            precision: Precision::F32,
        }
    }
}

/// One kernel's run, as reported by [`Session::run_profiled`].
#[derive(Clone, Debug)]
pub struct StepProfile<'a> {
    /// The graph node's name.
    pub node: &'a str,
    /// Its op, as named in profiles (`FusedConv`, `MaxPool`, ...).
    pub op: &'a str,
    /// The algorithm the kernel chose (`"winograd f(4x4,3x3)"`), or `""`.
    pub algorithm: &'static str,
    /// Shape of the node's first output.
    pub output_shape: &'a [usize],
    /// Floating-point operations, for arithmetic-bound kernels.
    pub flops: Option<u64>,
    pub elapsed: std::time::Duration,
}

/// Plans are keyed by input shapes (and the values of small integer inputs).
type PlanKey = Vec<(Vec<usize>, Option<Vec<i64>>)>;

/// A plan ready to run on the session's backend.
enum PlanEntry {
    Cpu {
        plan: CpuPlan,
        /// Arenas not in use by a running call; one per concurrent caller at most.
        arenas: Mutex<Vec<Arena>>,
    },
    #[cfg(feature = "wgpu")]
    Wgpu(crate::backend::wgpu::GpuProgram),
    #[cfg(feature = "cuda")]
    Cuda(crate::backend::cuda::CudaProgram),
}

impl PlanEntry {
    fn cpu_plan(&self) -> Option<&CpuPlan> {
        match self {
            PlanEntry::Cpu { plan, .. } => Some(plan),
            #[cfg(feature = "wgpu")]
            PlanEntry::Wgpu(_) => None,
            #[cfg(feature = "cuda")]
            PlanEntry::Cuda(_) => None,
        }
    }
}

/// The device a GPU session holds.
enum Device {
    Cpu,
    #[cfg(feature = "wgpu")]
    Wgpu(Arc<crate::backend::wgpu::Gpu>),
    #[cfg(feature = "cuda")]
    Cuda(Arc<crate::backend::cuda::Cuda>),
}

/// A loaded, optimised model. `Send + Sync`: share it between threads with `Arc`.
pub struct Session {
    graph: Graph,
    options: SessionOptions,
    pool: rayon::ThreadPool,
    /// How many workers are pinned to a CPU so far (each pins itself as it starts).
    pinned: Arc<AtomicUsize>,
    /// Held by the run whose workers spin between parallel regions (one at a time).
    spinning: AtomicBool,
    device: Device,
    plans: Mutex<HashMap<PlanKey, Arc<PlanEntry>>>,
}

impl Session {
    /// Loads a model file (memory-mapped; external data is looked up next to it).
    pub fn from_file(path: impl AsRef<Path>, options: SessionOptions) -> Result<Session> {
        let graph = onnx::load_graph_file(path.as_ref(), &options.limits)?;
        Session::from_graph(graph, options)
    }

    /// Loads a model from bytes in memory (it cannot use external data).
    pub fn from_bytes(bytes: Vec<u8>, options: SessionOptions) -> Result<Session> {
        let shared: SharedBytes = Arc::new(bytes);
        let graph = onnx::load_graph(&shared, None, &options.limits)?;
        Session::from_graph(graph, options)
    }

    /// Builds a session from an IR graph (for callers that construct graphs directly).
    pub fn from_graph(mut graph: Graph, options: SessionOptions) -> Result<Session> {
        crate::ir::infer_shapes(&mut graph)?;
        if options.optimize {
            crate::passes::optimize(&mut graph)?;
            crate::ir::infer_shapes(&mut graph)?;
        }
        let threads = match options.threads {
            Some(0) => return Err(Error::Usage("threads must be at least 1".into())),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        let device = open_device(&graph, &options)?;
        let cpus = options.pinning.plan(threads);
        let pinned = Arc::new(AtomicUsize::new(0));
        let pinned_by_workers = pinned.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kiln-{i}"))
            .start_handler(move |i| {
                if let Some(&cpu) = cpus.as_ref().and_then(|cpus| cpus.get(i)) {
                    if affinity::pin_current_thread(cpu) {
                        pinned_by_workers.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
            .build()
            .map_err(|e| Error::Usage(format!("cannot start {threads} threads: {e}")))?;
        Ok(Session {
            graph,
            options,
            pool,
            pinned,
            spinning: AtomicBool::new(false),
            device,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The graph this session runs (after optimisation, if enabled).
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub fn options(&self) -> &SessionOptions {
        &self.options
    }

    pub fn threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    /// Whether every worker is pinned to a CPU of its own (see [`Pinning`]).
    pub fn pinned(&self) -> bool {
        // Workers start (and pin themselves) in the background; a run makes sure
        // they all have.
        self.pool.broadcast(|_| ());
        self.pinned.load(Ordering::Relaxed) == self.threads()
    }

    pub fn input_names(&self) -> Vec<String> {
        self.graph
            .inputs
            .iter()
            .map(|&i| self.graph.values[i].name.clone())
            .collect()
    }

    pub fn output_names(&self) -> Vec<String> {
        self.graph
            .outputs
            .iter()
            .map(|&i| self.graph.values[i].name.clone())
            .collect()
    }

    /// Runs the model. `inputs` are in graph-input order; outputs come back in
    /// graph-output order.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run_with_hook(inputs, None)
    }

    /// Like [`Session::run`], calling `hook` after every kernel with what it ran
    /// and how long it took (used by `kiln profile`).
    pub fn run_profiled(
        &self,
        inputs: &[Tensor],
        hook: &mut (dyn FnMut(&StepProfile<'_>) + Send),
    ) -> Result<Vec<Tensor>> {
        let entry = self.plan_for(inputs)?;
        let Some(plan) = entry.cpu_plan() else {
            return Err(Error::Usage(format!(
                "per-op profiles are measured on the CPU backend only, not {}",
                self.options.backend
            )));
        };
        let graph = &self.graph;
        let mut per_step = |i: usize, elapsed| {
            let step = &plan.steps[i];
            let node = &graph.nodes[step.node];
            hook(&StepProfile {
                node: &node.name,
                op: node.op.name(),
                algorithm: step.kernel.label(),
                output_shape: step.outputs.first().map_or(&[], |(_, s)| s.as_slice()),
                flops: step.kernel.flops(),
                elapsed,
            })
        };
        self.run_with_hook(inputs, Some(&mut per_step))
    }

    fn run_with_hook(&self, inputs: &[Tensor], hook: Option<executor::StepHook>) -> Result<Vec<Tensor>> {
        let entry = self.plan_for(inputs)?;
        let (plan, arenas) = match &*entry {
            PlanEntry::Cpu { plan, arenas } => (plan, arenas),
            #[cfg(feature = "wgpu")]
            PlanEntry::Wgpu(program) => return program.run(inputs),
            #[cfg(feature = "cuda")]
            PlanEntry::Cuda(program) => return program.run(inputs),
        };
        let mut arena = arenas
            .lock()
            .map_err(|_| Error::invalid("arena pool poisoned"))?
            .pop()
            .unwrap_or_else(|| Arena::for_plan(plan));
        let result = self.pool.install(|| {
            let _awake = StayAwake::start(&self.spinning);
            executor::execute(plan, &mut arena, inputs, hook)
        });
        if let Ok(mut arenas) = arenas.lock() {
            arenas.push(arena);
        }
        result
    }

    /// Activation bytes the plan for these inputs uses.
    pub fn arena_bytes(&self, inputs: &[Tensor]) -> Result<usize> {
        Ok(match &*self.plan_for(inputs)? {
            PlanEntry::Cpu { plan, .. } => plan.arena_bytes(),
            #[cfg(feature = "wgpu")]
            PlanEntry::Wgpu(program) => program.plan().arena_bytes(),
            #[cfg(feature = "cuda")]
            PlanEntry::Cuda(program) => program.plan().arena_bytes(),
        })
    }

    /// The adapter a GPU session runs on, e.g. `NVIDIA H200 (Vulkan, DiscreteGpu)`.
    pub fn device_name(&self) -> String {
        match &self.device {
            Device::Cpu => "cpu".into(),
            #[cfg(feature = "wgpu")]
            Device::Wgpu(gpu) => crate::backend::wgpu::describe(&gpu.info),
            #[cfg(feature = "cuda")]
            Device::Cuda(cuda) => cuda.describe(),
        }
    }

    fn plan_for(&self, inputs: &[Tensor]) -> Result<Arc<PlanEntry>> {
        self.check_inputs(inputs)?;
        let key: PlanKey = inputs
            .iter()
            .map(|t| {
                (
                    t.shape().to_vec(),
                    plan::is_shape_input(t).then(|| t.to_i64_vec()).flatten(),
                )
            })
            .collect();
        let mut plans = self
            .plans
            .lock()
            .map_err(|_| Error::invalid("plan cache poisoned"))?;
        if let Some(entry) = plans.get(&key) {
            return Ok(entry.clone());
        }
        let limits = &self.options.limits;
        let entry = Arc::new(match &self.device {
            Device::Cpu => PlanEntry::Cpu {
                plan: self
                    .pool
                    .install(|| plan::build(&self.graph, inputs, limits, &self.options.cpu))?,
                arenas: Mutex::new(Vec::new()),
            },
            #[cfg(feature = "wgpu")]
            Device::Wgpu(gpu) => {
                let prepare = crate::backend::wgpu::GpuPrepare;
                let plan = self
                    .pool
                    .install(|| plan::build(&self.graph, inputs, limits, &prepare))?;
                PlanEntry::Wgpu(crate::backend::wgpu::GpuProgram::new(gpu.clone(), plan, inputs)?)
            }
            #[cfg(feature = "cuda")]
            Device::Cuda(cuda) => {
                let prepare = crate::backend::cuda::CudaPrepare {
                    cudnn: cuda.libraries.cudnn,
                    cublas: cuda.libraries.cublas,
                };
                let plan = self
                    .pool
                    .install(|| plan::build(&self.graph, inputs, limits, &prepare))?;
                PlanEntry::Cuda(crate::backend::cuda::CudaProgram::new(
                    cuda.clone(),
                    plan,
                    inputs,
                )?)
            }
        });
        plans.insert(key, entry.clone());
        Ok(entry)
    }

    fn check_inputs(&self, inputs: &[Tensor]) -> Result<()> {
        if inputs.len() != self.graph.inputs.len() {
            return Err(Error::InputMismatch {
                name: "(inputs)".into(),
                expected: format!(
                    "{} input tensor(s) {:?}",
                    self.graph.inputs.len(),
                    self.input_names()
                ),
                got: format!("{}", inputs.len()),
            });
        }
        for (&id, t) in self.graph.inputs.iter().zip(inputs) {
            let v = &self.graph.values[id];
            let mismatch = |expected: String, got: String| Error::InputMismatch {
                name: v.name.clone(),
                expected,
                got,
            };
            if t.dtype() != v.fact.dtype {
                return Err(mismatch(
                    format!("dtype {}", v.fact.dtype),
                    format!("dtype {}", t.dtype()),
                ));
            }
            if let Some(dims) = &v.fact.shape {
                let ok = dims.len() == t.shape().len()
                    && dims
                        .iter()
                        .zip(t.shape())
                        .all(|(d, &n)| matches!(d, Dim::Sym(_)) || *d == Dim::Known(n));
                if !ok {
                    return Err(mismatch(
                        format!("shape {}", shape_string(&v.fact.shape)),
                        format!("shape {:?}", t.shape()),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Opens the options' backend, after checking it can run every node of `graph`.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(unused_variables))]
fn open_device(graph: &Graph, options: &SessionOptions) -> Result<Device> {
    match options.backend {
        Backend::Cpu => {
            if options.precision != Precision::F32 {
                return Err(Error::Usage(format!(
                    "the CPU backend computes f32 only, not {:?}",
                    options.precision
                )));
            }
            Ok(Device::Cpu)
        }
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => {
            use crate::backend::wgpu;
            check_claims(graph, "wgpu", wgpu::claims)?;
            Ok(Device::Wgpu(Arc::new(wgpu::Gpu::open(options.precision)?)))
        }
        #[cfg(feature = "cuda")]
        Backend::Cuda => {
            use crate::backend::cuda;
            check_claims(graph, "cuda", cuda::claims)?;
            Ok(Device::Cuda(Arc::new(cuda::Cuda::open(options.precision)?)))
        }
        #[cfg(not(feature = "wgpu"))]
        Backend::Wgpu => Err(not_built("wgpu")),
        #[cfg(not(feature = "cuda"))]
        Backend::Cuda => Err(not_built("cuda")),
    }
}

/// Every node the backend has no kernel for, as one error (so a model fails at
/// load with its whole list, not at its first unsupported node).
#[cfg(any(feature = "wgpu", feature = "cuda"))]
fn check_claims(graph: &Graph, backend: &str, claims: fn(&crate::ir::ops::Op) -> bool) -> Result<()> {
    let missing: Vec<crate::error::Unsupported> = graph
        .nodes
        .iter()
        .filter(|n| !claims(&n.op))
        .map(|n| crate::error::Unsupported {
            node: n.name.clone(),
            op: n.op.name().into(),
            opset: graph.opset,
            reason: format!("not implemented by the {backend} backend"),
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Unsupported(missing))
    }
}

#[cfg(not(all(feature = "wgpu", feature = "cuda")))]
fn not_built(backend: &str) -> Error {
    Error::BackendUnavailable {
        backend: backend.into(),
        reason: format!("this build of kiln has no {backend} backend (rebuild with `--features {backend}`)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_unavailable() {
        let zoo = crate::zoo::build("resnet18").unwrap();
        let options = SessionOptions {
            backend: "cuda".parse().unwrap(),
            ..SessionOptions::default()
        };
        let err = Session::from_bytes(zoo.onnx, options).err().unwrap();
        assert!(matches!(err, Error::BackendUnavailable { .. }), "{err}");
        assert!(err.to_string().contains("--features cuda"), "{err}");
    }

    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn wgpu_without_the_feature_is_unavailable() {
        let zoo = crate::zoo::build("resnet18").unwrap();
        let options = SessionOptions {
            backend: "wgpu".parse().unwrap(),
            ..SessionOptions::default()
        };
        let err = Session::from_bytes(zoo.onnx, options).err().unwrap();
        assert!(matches!(err, Error::BackendUnavailable { .. }), "{err}");
    }

    #[test]
    fn f16_is_refused_on_the_cpu() {
        let zoo = crate::zoo::build("resnet18").unwrap();
        let options = SessionOptions {
            precision: Precision::F16,
            ..SessionOptions::default()
        };
        assert!(matches!(
            Session::from_bytes(zoo.onnx, options),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn session_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Session>();
    }
}
