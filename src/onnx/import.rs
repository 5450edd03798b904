//! ONNX graph → kiln IR. The only place that matches op-type strings.
//!
//! Every node is converted even after a failure, so one error lists *all*
//! unsupported ops, opsets and dtypes of a model.

use std::collections::HashMap;

use crate::error::{Error, Result, Unsupported};
use crate::ir::ops::*;
use crate::ir::{Dim, Fact, Graph, Node, ValueId};
use crate::onnx::attrs::Attrs;
use crate::onnx::load::{dtype_code_name, tensor_from_proto, Source};
use crate::onnx::proto::{DimProto, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use crate::tensor::{DType, Tensor};

/// Oldest and newest default-domain opsets kiln accepts.
pub const MIN_OPSET: i64 = 7;
pub const MAX_OPSET: i64 = 28;

/// Builds the IR graph of a decoded model (values get facts from the model's
/// declarations only; shape inference runs afterwards).
pub fn import(model: &ModelProto, src: &mut Source) -> Result<Graph> {
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::invalid("model has no graph"))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        // ONNX says a missing default-domain import means opset 1; such models predate
        // everything kiln supports and are reported below.
        .unwrap_or(1);
    let mut unsupported = Vec::new();
    if !(MIN_OPSET..=MAX_OPSET).contains(&opset) {
        unsupported.push(Unsupported {
            node: "(model)".into(),
            op: "opset_import".into(),
            opset,
            reason: format!(
                "default-domain opset {opset} is outside the supported {MIN_OPSET}..={MAX_OPSET}"
            ),
        });
    }
    if graph.has_sparse_initializers {
        unsupported.push(Unsupported {
            node: "(graph)".into(),
            op: "sparse_initializer".into(),
            opset,
            reason: "sparse initializers are not supported".into(),
        });
    }

    let mut b = Builder {
        g: Graph {
            opset,
            ..Graph::default()
        },
        names: HashMap::new(),
        opset,
        src,
    };
    b.declare_initializers(graph)?;
    b.declare_inputs(graph, &mut unsupported)?;
    let value_types: HashMap<&str, &ValueInfoProto> = graph.value_info.iter().map(|v| (v.name, v)).collect();

    for (index, node) in topological_order(graph)?
        .into_iter()
        .map(|i| (i, &graph.nodes[i]))
    {
        match b.convert(node, index) {
            Ok(()) => {}
            Err(Error::Unsupported(mut u)) => {
                unsupported.append(&mut u);
                // Keep going: declare the outputs so later nodes can still be checked.
                for out in node.outputs.iter().filter(|o| !o.is_empty()) {
                    let id = b.g.add_value(*out, Fact::unknown_shape(DType::F32));
                    b.names.insert(out.to_string(), id);
                }
            }
            Err(e) => return Err(e),
        }
    }
    if !unsupported.is_empty() {
        return Err(Error::Unsupported(unsupported));
    }

    for out in &graph.outputs {
        let id = *b.names.get(out.name).ok_or_else(|| {
            Error::invalid(format!("graph output '{}' is not produced by any node", out.name))
        })?;
        if let Some(decl) = declared_fact(out)? {
            let fact = &mut b.g.values[id].fact;
            if fact.shape.is_none() {
                fact.shape = decl.shape;
            }
        }
        b.g.outputs.push(id);
    }
    // Intermediate declarations (value_info) are hints; shape inference recomputes them.
    drop(value_types);
    Ok(b.g)
}

/// Node indices in an order where producers precede consumers. ONNX requires
/// topological order, but exporters sometimes get it wrong; a cycle is an error.
fn topological_order(graph: &GraphProto) -> Result<Vec<usize>> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in graph.nodes.iter().enumerate() {
        for out in n.outputs.iter().filter(|o| !o.is_empty()) {
            if producer.insert(out, i).is_some() {
                return Err(Error::invalid(format!(
                    "value '{out}' is produced by more than one node"
                )));
            }
        }
    }
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; graph.nodes.len()];
    let mut order = Vec::with_capacity(graph.nodes.len());
    for root in 0..graph.nodes.len() {
        if state[root] != 0 {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        state[root] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            let inputs = &graph.nodes[node].inputs;
            if *next < inputs.len() {
                let input = inputs[*next];
                *next += 1;
                if let Some(&p) = producer.get(input) {
                    match state[p] {
                        0 => {
                            state[p] = 1;
                            stack.push((p, 0));
                        }
                        1 => {
                            return Err(Error::invalid(format!(
                                "graph has a cycle through value '{input}'"
                            )))
                        }
                        _ => {}
                    }
                }
            } else {
                state[node] = 2;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

fn declared_fact(v: &ValueInfoProto) -> Result<Option<Fact>> {
    let Some(tt) = &v.tensor_type else { return Ok(None) };
    let Some(dtype) = DType::from_onnx_code(tt.elem_type) else {
        return Ok(None);
    };
    let shape = match &tt.shape {
        None => None,
        Some(dims) => Some(
            dims.iter()
                .map(|d| match d {
                    DimProto::Value(n) if *n >= 0 => Ok(Dim::Known(*n as usize)),
                    DimProto::Value(n) => Err(Error::invalid(format!("value '{}' declares dim {n}", v.name))),
                    DimProto::Param(p) => Ok(Dim::Sym(p.to_string())),
                    DimProto::Unknown => Ok(Dim::unknown()),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
    };
    Ok(Some(Fact {
        dtype,
        shape,
        value: None,
    }))
}

struct Builder<'s, 'b> {
    g: Graph,
    names: HashMap<String, ValueId>,
    opset: i64,
    src: &'b mut Source<'s>,
}

impl Builder<'_, '_> {
    fn declare_initializers(&mut self, graph: &GraphProto) -> Result<()> {
        let mut weight_bytes = 0usize;
        for init in &graph.initializers {
            if init.name.is_empty() {
                return Err(Error::invalid("initializer without a name"));
            }
            let t = tensor_from_proto(init, self.src)?;
            weight_bytes = weight_bytes.saturating_add(t.len() * t.dtype().size());
            if weight_bytes > self.src.limits.max_weight_bytes {
                return Err(Error::Limit(format!(
                    "weights exceed {} bytes (at initializer '{}')",
                    self.src.limits.max_weight_bytes, init.name
                )));
            }
            let id = self.g.add_constant(init.name, t);
            if self.names.insert(init.name.to_string(), id).is_some() {
                return Err(Error::invalid(format!("duplicate initializer '{}'", init.name)));
            }
        }
        Ok(())
    }

    fn declare_inputs(&mut self, graph: &GraphProto, unsupported: &mut Vec<Unsupported>) -> Result<()> {
        for input in &graph.inputs {
            // Old exporters list initializers among the inputs; they are constants.
            if self.names.contains_key(input.name) {
                continue;
            }
            let fact = match declared_fact(input)? {
                Some(f) => f,
                None => {
                    let what = match &input.tensor_type {
                        Some(tt) => format!("element type {}", dtype_code_name(tt.elem_type)),
                        None => "a non-tensor type".to_string(),
                    };
                    unsupported.push(Unsupported {
                        node: input.name.into(),
                        op: "graph input".into(),
                        opset: self.opset,
                        reason: format!("{what} is not supported"),
                    });
                    Fact::unknown_shape(DType::F32)
                }
            };
            // A declared input bigger than any tensor kiln may hold can never be fed:
            // say so now rather than on every run.
            let mut known = fact.shape.iter().flatten().filter_map(Dim::known);
            let elements = known.try_fold(1usize, |acc, d| acc.checked_mul(d));
            if elements.is_none_or(|n| n > self.src.limits.max_tensor_elements) {
                return Err(Error::Limit(format!(
                    "graph input '{}' declares shape {}, more than {} elements",
                    input.name,
                    crate::ir::graph::shape_string(&fact.shape),
                    self.src.limits.max_tensor_elements
                )));
            }
            let id = self.g.add_value(input.name, fact);
            self.names.insert(input.name.to_string(), id);
            self.g.inputs.push(id);
        }
        Ok(())
    }

    fn unsupported(&self, node: &NodeProto, index: usize, reason: impl Into<String>) -> Error {
        Error::Unsupported(vec![Unsupported {
            node: node_label(node, index),
            op: if node.domain.is_empty() {
                node.op_type.into()
            } else {
                format!("{}::{}", node.domain, node.op_type)
            },
            opset: self.opset,
            reason: reason.into(),
        }])
    }

    fn const_input(&mut self, node: &NodeProto, what: &str, t: Tensor) -> ValueId {
        self.g.add_constant(format!("{}/{what}", node.name), t)
    }

    fn convert(&mut self, node: &NodeProto, index: usize) -> Result<()> {
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(self.unsupported(node, index, format!("domain '{}' is not supported", node.domain)));
        }
        let a = Attrs::new(node);
        if node.attributes.iter().any(|x| x.has_graph) {
            return Err(self.unsupported(node, index, "ops with subgraphs are not supported"));
        }
        if let Some(x) = node.attributes.iter().find(|x| !x.ref_attr_name.is_empty()) {
            return Err(self.unsupported(
                node,
                index,
                format!("attribute '{}' refers to a function attribute", x.name),
            ));
        }
        let mut inputs: Vec<Option<ValueId>> = Vec::with_capacity(node.inputs.len());
        for name in &node.inputs {
            if name.is_empty() {
                inputs.push(None);
            } else {
                let id = *self.names.get(*name).ok_or_else(|| {
                    Error::invalid(format!(
                        "node '{}' reads '{name}', which nothing produces",
                        node_label(node, index)
                    ))
                })?;
                inputs.push(Some(id));
            }
        }
        let op = match self.op(node, index, &a, &mut inputs)? {
            Converted::Op(op) => op,
            Converted::Constant(t) => {
                let out = single_output(node, index)?;
                let id = self.g.add_constant(out, t);
                return self.bind(out, id);
            }
        };
        let mut outputs = Vec::with_capacity(node.outputs.len());
        for out in &node.outputs {
            // Omitted optional outputs still get a value, so output positions keep meaning.
            let id = self.g.add_value(*out, Fact::unknown_shape(DType::F32));
            if !out.is_empty() {
                self.bind(out, id)?;
            }
            outputs.push(id);
        }
        if outputs.is_empty() {
            return Err(Error::invalid(format!(
                "node '{}' has no outputs",
                node_label(node, index)
            )));
        }
        self.g.nodes.push(Node {
            name: node_label(node, index),
            op,
            inputs,
            outputs,
        });
        Ok(())
    }

    fn bind(&mut self, name: &str, id: ValueId) -> Result<()> {
        if self.names.insert(name.to_string(), id).is_some() {
            return Err(Error::invalid(format!(
                "value '{name}' is defined more than once"
            )));
        }
        Ok(())
    }

    /// Moves an attribute that later opsets turned into an input (axes, split sizes…)
    /// into input position `pos`, so the IR has one form of each op.
    fn attr_to_input(
        &mut self,
        node: &NodeProto,
        inputs: &mut Vec<Option<ValueId>>,
        pos: usize,
        name: &str,
        v: Option<Vec<i64>>,
    ) {
        if let Some(v) = v {
            let n = v.len();
            let id = self.const_input(node, name, Tensor::from_vec(vec![n], v).expect("length matches"));
            while inputs.len() <= pos {
                inputs.push(None);
            }
            inputs[pos] = Some(id);
        }
    }

    fn window(
        &self,
        node: &NodeProto,
        index: usize,
        a: &Attrs,
        inputs: &[Option<ValueId>],
        conv: bool,
    ) -> Result<Window> {
        if conv && inputs.get(1).copied().flatten().is_none() {
            return Err(Error::invalid(format!(
                "node '{}' ({}) has no weight input",
                node_label(node, index),
                node.op_type
            )));
        }
        let mut kernel_shape = a.usizes_opt("kernel_shape")?.unwrap_or_default();
        if kernel_shape.is_empty() {
            // Conv may omit kernel_shape: take it from the weight's declared shape.
            let w = inputs.get(1).copied().flatten().filter(|_| conv);
            let ks = w
                .and_then(|w| self.g.values[w].fact.concrete_shape())
                .filter(|s| s.len() >= 3);
            match ks {
                Some(s) => kernel_shape = s[2..].to_vec(),
                None => {
                    return Err(self.unsupported(
                        node,
                        index,
                        "kernel_shape missing and weight shape unknown",
                    ))
                }
            }
        }
        let n = kernel_shape.len();
        let auto_pad = match a.string("auto_pad", "NOTSET")?.as_str() {
            "NOTSET" | "" => AutoPad::NotSet,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            "VALID" => AutoPad::Valid,
            other => return Err(self.unsupported(node, index, format!("auto_pad '{other}'"))),
        };
        let strides = a.usizes_opt("strides")?.unwrap_or_else(|| vec![1; n]);
        let dilations = a.usizes_opt("dilations")?.unwrap_or_else(|| vec![1; n]);
        let pads = a.usizes_opt("pads")?.unwrap_or_else(|| vec![0; 2 * n]);
        if strides.len() != n || dilations.len() != n || pads.len() != 2 * n {
            return Err(Error::invalid(format!(
                "node '{}': kernel_shape {kernel_shape:?}, strides {strides:?}, dilations {dilations:?} and pads {pads:?} disagree on the number of spatial axes",
                node_label(node, index)
            )));
        }
        if strides.contains(&0) || dilations.contains(&0) || kernel_shape.contains(&0) {
            return Err(Error::invalid(format!(
                "node '{}': zero stride, dilation or kernel size",
                node_label(node, index)
            )));
        }
        Ok(Window {
            kernel_shape,
            strides,
            dilations,
            pads,
            auto_pad,
        })
    }

    fn op(
        &mut self,
        node: &NodeProto,
        index: usize,
        a: &Attrs,
        inputs: &mut Vec<Option<ValueId>>,
    ) -> Result<Converted> {
        use BinaryOp as B;
        use UnaryOp as U;
        let opset = self.opset;
        let unary = |u| Ok(Converted::Op(Op::Unary(u)));
        let binary = |b| Ok(Converted::Op(Op::Binary(b)));
        let reduce = |kind, this: &mut Self, inputs: &mut Vec<Option<ValueId>>| -> Result<Converted> {
            // ReduceSum moved axes to an input at opset 13, the others at 18.
            let axes_are_input = opset >= 18 || (kind == ReduceKind::Sum && opset >= 13);
            if !axes_are_input {
                let axes = a.ints_opt("axes")?;
                this.attr_to_input(node, inputs, 1, "axes", axes);
            }
            Ok(Converted::Op(Op::Reduce(Reduce {
                kind,
                keepdims: a.bool("keepdims", true)?,
                noop_with_empty_axes: a.bool("noop_with_empty_axes", false)?,
            })))
        };
        Ok(match node.op_type {
            "Relu" => unary(U::Relu)?,
            "Sigmoid" => unary(U::Sigmoid)?,
            "Tanh" => unary(U::Tanh)?,
            "Exp" => unary(U::Exp)?,
            "Log" => unary(U::Log)?,
            "Sqrt" => unary(U::Sqrt)?,
            "Abs" => unary(U::Abs)?,
            "Neg" => unary(U::Neg)?,
            "Erf" => unary(U::Erf)?,
            "Reciprocal" => unary(U::Reciprocal)?,
            "Floor" => unary(U::Floor)?,
            "Ceil" => unary(U::Ceil)?,
            "Round" => unary(U::Round)?,
            "Sign" => unary(U::Sign)?,
            "Sin" => unary(U::Sin)?,
            "Cos" => unary(U::Cos)?,
            "Not" => unary(U::Not)?,
            "Softplus" => unary(U::Softplus)?,
            "Softsign" => unary(U::Softsign)?,
            "HardSwish" => unary(U::HardSwish)?,
            "HardSigmoid" => unary(U::HardSigmoid {
                alpha: a.float("alpha", 0.2)?,
                beta: a.float("beta", 0.5)?,
            })?,
            "LeakyRelu" => unary(U::LeakyRelu {
                alpha: a.float("alpha", 0.01)?,
            })?,
            "Elu" => unary(U::Elu {
                alpha: a.float("alpha", 1.0)?,
            })?,
            "Selu" => unary(U::Selu {
                alpha: a.float("alpha", 1.673_263_2)?,
                gamma: a.float("gamma", 1.050_701)?,
            })?,
            "Celu" => unary(U::Celu {
                alpha: a.float("alpha", 1.0)?,
            })?,
            "Gelu" => unary(U::Gelu {
                tanh_approx: match a.string("approximate", "none")?.as_str() {
                    "none" => false,
                    "tanh" => true,
                    other => return Err(self.unsupported(node, index, format!("approximate '{other}'"))),
                },
            })?,
            "Add" => binary(B::Add)?,
            "Sub" => binary(B::Sub)?,
            "Mul" => binary(B::Mul)?,
            "Div" => binary(B::Div)?,
            "Pow" => binary(B::Pow)?,
            "Mod" => binary(B::Mod {
                fmod: a.bool("fmod", false)?,
            })?,
            "PRelu" => binary(B::PRelu)?,
            "Equal" => binary(B::Equal)?,
            "Less" => binary(B::Less)?,
            "LessOrEqual" => binary(B::LessOrEqual)?,
            "Greater" => binary(B::Greater)?,
            "GreaterOrEqual" => binary(B::GreaterOrEqual)?,
            "And" => binary(B::And)?,
            "Or" => binary(B::Or)?,
            "Xor" => binary(B::Xor)?,
            "BitShift" => match a.string("direction", "")?.as_str() {
                "LEFT" => binary(B::BitShiftLeft)?,
                "RIGHT" => binary(B::BitShiftRight)?,
                other => return Err(self.unsupported(node, index, format!("direction '{other}'"))),
            },
            "Sum" => Converted::Op(Op::Variadic {
                op: B::Add,
                mean: false,
            }),
            "Mean" => Converted::Op(Op::Variadic {
                op: B::Add,
                mean: true,
            }),
            "Max" => Converted::Op(Op::Variadic {
                op: B::Max,
                mean: false,
            }),
            "Min" => Converted::Op(Op::Variadic {
                op: B::Min,
                mean: false,
            }),
            "Clip" if opset < 11 => unary(U::Clamp {
                min: a.float("min", f32::NEG_INFINITY)?,
                max: a.float("max", f32::INFINITY)?,
            })?,
            "Clip" => Converted::Op(Op::Clip),
            "Where" => Converted::Op(Op::Where),
            "Cast" => {
                let code = a
                    .int_opt("to")?
                    .ok_or_else(|| Error::invalid("Cast without 'to'"))?;
                let to = i32::try_from(code)
                    .ok()
                    .and_then(DType::from_onnx_code)
                    .ok_or_else(|| {
                        self.unsupported(node, index, format!("cast to {}", dtype_code_name(code as i32)))
                    })?;
                Converted::Op(Op::Cast { to })
            }
            "Conv" => Converted::Op(Op::Conv(Conv {
                window: self.window(node, index, a, inputs, true)?,
                group: positive(a.int("group", 1)?, "group")?,
            })),
            "ConvTranspose" => Converted::Op(Op::ConvTranspose(ConvTranspose {
                window: self.window(node, index, a, inputs, true)?,
                group: positive(a.int("group", 1)?, "group")?,
                output_padding: a.usizes_opt("output_padding")?.unwrap_or_default(),
                output_shape: a.usizes_opt("output_shape")?.unwrap_or_default(),
            })),
            "BatchNormalization" => {
                if a.bool("training_mode", false)? || node.outputs.iter().skip(1).any(|o| !o.is_empty()) {
                    return Err(self.unsupported(node, index, "training mode (running statistics outputs)"));
                }
                Converted::Op(Op::BatchNorm {
                    epsilon: a.float("epsilon", 1e-5)?,
                })
            }
            "InstanceNormalization" => Converted::Op(Op::InstanceNorm {
                epsilon: a.float("epsilon", 1e-5)?,
            }),
            "LayerNormalization" => Converted::Op(Op::LayerNorm {
                axis: a.int("axis", -1)?,
                epsilon: a.float("epsilon", 1e-5)?,
            }),
            "MaxPool" | "AveragePool" | "LpPool" => {
                let kind = match node.op_type {
                    "MaxPool" => PoolKind::Max,
                    "AveragePool" => PoolKind::Avg {
                        count_include_pad: a.bool("count_include_pad", false)?,
                    },
                    _ => PoolKind::Lp {
                        p: positive(a.int("p", 2)?, "p")? as u32,
                    },
                };
                Converted::Op(Op::Pool(Pool {
                    kind,
                    window: self.window(node, index, a, inputs, false)?,
                    ceil_mode: a.bool("ceil_mode", false)?,
                    column_major_indices: a.int("storage_order", 0)? == 1,
                }))
            }
            "GlobalAveragePool" => Converted::Op(Op::GlobalPool(PoolKind::Avg {
                count_include_pad: true,
            })),
            "GlobalMaxPool" => Converted::Op(Op::GlobalPool(PoolKind::Max)),
            "GlobalLpPool" => Converted::Op(Op::GlobalPool(PoolKind::Lp {
                p: positive(a.int("p", 2)?, "p")? as u32,
            })),
            "ReduceSum" => reduce(ReduceKind::Sum, self, inputs)?,
            "ReduceMean" => reduce(ReduceKind::Mean, self, inputs)?,
            "ReduceMax" => reduce(ReduceKind::Max, self, inputs)?,
            "ReduceMin" => reduce(ReduceKind::Min, self, inputs)?,
            "ReduceProd" => reduce(ReduceKind::Prod, self, inputs)?,
            "ReduceL1" => reduce(ReduceKind::L1, self, inputs)?,
            "ReduceL2" => reduce(ReduceKind::L2, self, inputs)?,
            "ReduceLogSum" => reduce(ReduceKind::LogSum, self, inputs)?,
            "ReduceLogSumExp" => reduce(ReduceKind::LogSumExp, self, inputs)?,
            "ReduceSumSquare" => reduce(ReduceKind::SumSquare, self, inputs)?,
            "ArgMax" | "ArgMin" => Converted::Op(Op::ArgExtreme {
                max: node.op_type == "ArgMax",
                axis: a.int("axis", 0)?,
                keepdims: a.bool("keepdims", true)?,
                select_last_index: a.bool("select_last_index", false)?,
            }),
            "Gemm" => Converted::Op(Op::Gemm(Gemm {
                alpha: a.float("alpha", 1.0)?,
                beta: a.float("beta", 1.0)?,
                trans_a: a.bool("transA", false)?,
                trans_b: a.bool("transB", false)?,
            })),
            "MatMul" => Converted::Op(Op::MatMul),
            "Softmax" | "LogSoftmax" => Converted::Op(Op::Softmax {
                axis: a.int("axis", if opset < 13 { 1 } else { -1 })?,
                legacy: opset < 13,
                log: node.op_type == "LogSoftmax",
            }),
            "Flatten" => Converted::Op(Op::Flatten {
                axis: a.int("axis", 1)?,
            }),
            "Reshape" => Converted::Op(Op::Reshape {
                allowzero: a.bool("allowzero", false)?,
            }),
            "Transpose" => Converted::Op(Op::Transpose {
                perm: a.usizes_opt("perm")?,
            }),
            "Concat" => Converted::Op(Op::Concat {
                axis: a
                    .int_opt("axis")?
                    .ok_or_else(|| Error::invalid("Concat without 'axis'"))?,
            }),
            "Split" => {
                if opset < 13 {
                    let split = a.ints_opt("split")?;
                    self.attr_to_input(node, inputs, 1, "split", split);
                }
                Converted::Op(Op::Split {
                    axis: a.int("axis", 0)?,
                })
            }
            "Slice" => {
                if opset < 10 {
                    let (starts, ends, axes) =
                        (a.ints_opt("starts")?, a.ints_opt("ends")?, a.ints_opt("axes")?);
                    self.attr_to_input(node, inputs, 1, "starts", starts);
                    self.attr_to_input(node, inputs, 2, "ends", ends);
                    self.attr_to_input(node, inputs, 3, "axes", axes);
                }
                Converted::Op(Op::Slice)
            }
            "Gather" => Converted::Op(Op::Gather {
                axis: a.int("axis", 0)?,
            }),
            "GatherElements" => Converted::Op(Op::GatherElements {
                axis: a.int("axis", 0)?,
            }),
            "Shape" => Converted::Op(Op::Shape {
                start: a.int("start", 0)?,
                end: a.int_opt("end")?,
            }),
            "Size" => Converted::Op(Op::Size),
            "Unsqueeze" | "Squeeze" => {
                if opset < 13 {
                    let axes = a.ints_opt("axes")?;
                    self.attr_to_input(node, inputs, 1, "axes", axes);
                }
                Converted::Op(if node.op_type == "Unsqueeze" {
                    Op::Unsqueeze
                } else {
                    Op::Squeeze
                })
            }
            "Identity" => Converted::Op(Op::Identity),
            "Dropout" => {
                // Inference only: `training_mode` (input 2) must be absent or a constant false.
                let training = match inputs.get(2).copied().flatten() {
                    None => false,
                    Some(t) => self
                        .g
                        .constant(t)
                        .and_then(Tensor::to_i64_vec)
                        .is_none_or(|v| v.iter().any(|&x| x != 0)),
                };
                if training {
                    return Err(self.unsupported(node, index, "training mode"));
                }
                inputs.truncate(1);
                Converted::Op(Op::Dropout)
            }
            "Pad" => {
                let mode = match a.string("mode", "constant")?.as_str() {
                    "constant" => PadMode::Constant,
                    "reflect" => PadMode::Reflect,
                    "edge" => PadMode::Edge,
                    "wrap" => PadMode::Wrap,
                    other => return Err(self.unsupported(node, index, format!("mode '{other}'"))),
                };
                if opset < 11 {
                    let pads = a.ints_opt("pads")?;
                    self.attr_to_input(node, inputs, 1, "pads", pads);
                    let value = a.float("value", 0.0)?;
                    let id = self.const_input(node, "value", Tensor::scalar(value));
                    inputs.push(Some(id));
                }
                Converted::Op(Op::Pad { mode })
            }
            "Expand" => Converted::Op(Op::Expand),
            "Tile" => Converted::Op(Op::Tile),
            "ConstantOfShape" => {
                let value = match a.get("value").and_then(|x| x.t.as_ref()) {
                    Some(t) => tensor_from_proto(t, self.src)?,
                    None => Tensor::scalar(0.0f32),
                };
                if value.len() != 1 {
                    return Err(Error::invalid("ConstantOfShape value must have one element"));
                }
                Converted::Op(Op::ConstantOfShape { value })
            }
            "Range" => Converted::Op(Op::Range),
            "Constant" => Converted::Constant(self.constant_value(node, index, a)?),
            "Resize" | "Upsample" => self.resize(node, index, a, inputs)?,
            "DepthToSpace" => Converted::Op(Op::DepthToSpace {
                blocksize: positive(a.int("blocksize", 0)?, "blocksize")?,
                crd: a.string("mode", "DCR")? == "CRD",
            }),
            "SpaceToDepth" => Converted::Op(Op::SpaceToDepth {
                blocksize: positive(a.int("blocksize", 0)?, "blocksize")?,
            }),
            "TopK" => {
                if opset < 10 {
                    let k = a.int_opt("k")?;
                    self.attr_to_input(node, inputs, 1, "k", k.map(|k| vec![k]));
                }
                Converted::Op(Op::TopK {
                    axis: a.int("axis", -1)?,
                    largest: a.bool("largest", true)?,
                    sorted: a.bool("sorted", true)?,
                })
            }
            "CumSum" => Converted::Op(Op::CumSum {
                exclusive: a.bool("exclusive", false)?,
                reverse: a.bool("reverse", false)?,
            }),
            other => return Err(self.unsupported(node, index, format!("op '{other}' is not supported"))),
        })
    }

    fn constant_value(&mut self, node: &NodeProto, index: usize, a: &Attrs) -> Result<Tensor> {
        if let Some(t) = a.get("value").and_then(|x| x.t.as_ref()) {
            return tensor_from_proto(t, self.src);
        }
        if let Some(x) = a.get("value_float") {
            return Ok(Tensor::scalar(x.f));
        }
        if let Some(x) = a.get("value_int") {
            return Ok(Tensor::scalar(x.i));
        }
        if let Some(v) = a.floats_opt("value_floats")? {
            return Tensor::from_vec(vec![v.len()], v);
        }
        if let Some(v) = a.ints_opt("value_ints")? {
            return Tensor::from_vec(vec![v.len()], v);
        }
        Err(self.unsupported(
            node,
            index,
            "Constant without a supported value attribute (string/sparse values are not supported)",
        ))
    }

    fn resize(
        &mut self,
        node: &NodeProto,
        index: usize,
        a: &Attrs,
        inputs: &mut Vec<Option<ValueId>>,
    ) -> Result<Converted> {
        if node.op_type == "Upsample" || self.opset < 11 {
            // [x, scales] → [x, roi, scales, sizes]
            inputs.truncate(2);
            let scales = inputs.pop().flatten();
            inputs.extend([None, scales]);
        }
        if a.bool("antialias", false)? {
            return Err(self.unsupported(node, index, "antialias"));
        }
        let mode = match a.string("mode", "nearest")?.as_str() {
            "nearest" => ResizeMode::Nearest,
            "linear" | "bilinear" => ResizeMode::Linear,
            "cubic" => ResizeMode::Cubic,
            other => return Err(self.unsupported(node, index, format!("mode '{other}'"))),
        };
        let default_coord = if self.opset < 11 {
            "asymmetric"
        } else {
            "half_pixel"
        };
        let coord = match a
            .string("coordinate_transformation_mode", default_coord)?
            .as_str()
        {
            "half_pixel" => CoordTransform::HalfPixel,
            "half_pixel_symmetric" => CoordTransform::HalfPixelSymmetric,
            "pytorch_half_pixel" => CoordTransform::PytorchHalfPixel,
            "align_corners" => CoordTransform::AlignCorners,
            "asymmetric" => CoordTransform::Asymmetric,
            "tf_crop_and_resize" => CoordTransform::TfCropAndResize,
            other => {
                return Err(self.unsupported(
                    node,
                    index,
                    format!("coordinate_transformation_mode '{other}'"),
                ))
            }
        };
        let nearest = match a.string("nearest_mode", "round_prefer_floor")?.as_str() {
            "round_prefer_floor" => NearestMode::RoundPreferFloor,
            "round_prefer_ceil" => NearestMode::RoundPreferCeil,
            "floor" => NearestMode::Floor,
            "ceil" => NearestMode::Ceil,
            other => return Err(self.unsupported(node, index, format!("nearest_mode '{other}'"))),
        };
        let keep_aspect_ratio = match a.string("keep_aspect_ratio_policy", "stretch")?.as_str() {
            "stretch" => KeepAspect::Stretch,
            "not_larger" => KeepAspect::NotLarger,
            "not_smaller" => KeepAspect::NotSmaller,
            other => {
                return Err(self.unsupported(node, index, format!("keep_aspect_ratio_policy '{other}'")))
            }
        };
        Ok(Converted::Op(Op::Resize(Resize {
            mode,
            coord,
            nearest,
            cubic_coeff_a: a.float("cubic_coeff_a", -0.75)?,
            exclude_outside: a.bool("exclude_outside", false)?,
            extrapolation_value: a.float("extrapolation_value", 0.0)?,
            axes: a.ints_opt("axes")?.unwrap_or_default(),
            keep_aspect_ratio,
        })))
    }
}

enum Converted {
    Op(Op),
    Constant(Tensor),
}

fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index} ({})", node.op_type)
    } else {
        node.name.to_string()
    }
}

fn single_output<'a>(node: &NodeProto<'a>, index: usize) -> Result<&'a str> {
    match node.outputs.as_slice() {
        [one] if !one.is_empty() => Ok(one),
        _ => Err(Error::invalid(format!(
            "node '{}' must have exactly one output",
            node_label(node, index)
        ))),
    }
}

fn positive(v: i64, what: &str) -> Result<usize> {
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| Error::invalid(format!("attribute '{what}' must be positive, got {v}")))
}
