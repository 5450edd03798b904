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
use std::sync::{Arc, Mutex};

use crate::backend::cpu::executor::{self, Arena};
use crate::backend::cpu::CpuOptions;
use crate::error::{Error, Result};
use crate::ir::{graph::shape_string, Dim, Graph};
use crate::onnx::{self, Limits};
use crate::plan::{self, Plan};
use crate::tensor::{SharedBytes, Tensor};

/// Where a session's kernels run.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    #[default]
    Cpu,
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Backend> {
        match s {
            "cpu" => Ok(Backend::Cpu),
            "cuda" | "wgpu" => Err(Error::BackendUnavailable {
                backend: s.into(),
                reason: "this build of kiln has no such backend".into(),
            }),
            other => Err(Error::Usage(format!("unknown backend '{other}' (known: cpu)"))),
        }
    }
}

#[derive(Clone, Debug)]
pub struct SessionOptions {
    pub backend: Backend,
    /// Worker threads; `None` = one per available core.
    pub threads: Option<usize>,
    /// Run the graph optimizer (`false` runs the graph exactly as loaded).
    pub optimize: bool,
    pub limits: Limits,
    /// CPU kernel algorithm choices.
    pub cpu: CpuOptions,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            backend: Backend::Cpu,
            threads: None,
            optimize: true,
            limits: Limits::default(),
            cpu: CpuOptions::default(),
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

struct PlanEntry {
    plan: Plan,
    /// Arenas not in use by a running call; one per concurrent caller at most.
    arenas: Mutex<Vec<Arena>>,
}

/// A loaded, optimised model. `Send + Sync`: share it between threads with `Arc`.
pub struct Session {
    graph: Graph,
    options: SessionOptions,
    pool: rayon::ThreadPool,
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("kiln-{i}"))
            .build()
            .map_err(|e| Error::Usage(format!("cannot start {threads} threads: {e}")))?;
        Ok(Session {
            graph,
            options,
            pool,
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
        let graph = &self.graph;
        let mut per_step = |i: usize, elapsed| {
            let step = &entry.plan.steps[i];
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
        let mut arena = entry
            .arenas
            .lock()
            .map_err(|_| Error::invalid("arena pool poisoned"))?
            .pop()
            .unwrap_or_else(|| Arena::for_plan(&entry.plan));
        let result = self
            .pool
            .install(|| executor::execute(&entry.plan, &mut arena, inputs, hook));
        if let Ok(mut arenas) = entry.arenas.lock() {
            arenas.push(arena);
        }
        result
    }

    /// Activation bytes the plan for these inputs uses.
    pub fn arena_bytes(&self, inputs: &[Tensor]) -> Result<usize> {
        Ok(self.plan_for(inputs)?.plan.arena_bytes())
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
        let plan = self
            .pool
            .install(|| plan::build(&self.graph, inputs, &self.options.limits, &self.options.cpu))?;
        let entry = Arc::new(PlanEntry {
            plan,
            arenas: Mutex::new(Vec::new()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Session>();
    }
}
