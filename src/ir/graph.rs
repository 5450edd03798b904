//! The graph: values (with facts) and nodes (with typed ops), in topological order.

use std::collections::HashMap;
use std::fmt;

use crate::ir::ops::Op;
use crate::tensor::{DType, Tensor};

/// Index of a value in [`Graph::values`].
pub type ValueId = usize;

/// One dimension of a shape: a number, or a symbol such as the dynamic batch axis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(usize),
    /// A named dimension (from the model's `dim_param`) or one that shape inference
    /// could not resolve without concrete input shapes (`"?"`).
    Sym(String),
}

impl Dim {
    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }

    pub fn unknown() -> Dim {
        Dim::Sym("?".into())
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// What is known about a value: dtype, shape (if its rank is known), and its contents
/// if it is a constant.
#[derive(Clone, Debug)]
pub struct Fact {
    pub dtype: DType,
    pub shape: Option<Vec<Dim>>,
    pub value: Option<Tensor>,
}

impl Fact {
    pub fn new(dtype: DType, shape: Vec<Dim>) -> Fact {
        Fact {
            dtype,
            shape: Some(shape),
            value: None,
        }
    }

    pub fn unknown_shape(dtype: DType) -> Fact {
        Fact {
            dtype,
            shape: None,
            value: None,
        }
    }

    pub fn constant(t: Tensor) -> Fact {
        Fact {
            dtype: t.dtype(),
            shape: Some(t.shape().iter().map(|&d| Dim::Known(d)).collect()),
            value: Some(t),
        }
    }

    pub fn rank(&self) -> Option<usize> {
        self.shape.as_ref().map(Vec::len)
    }

    /// The shape as plain numbers, when every dimension is known.
    pub fn concrete_shape(&self) -> Option<Vec<usize>> {
        self.shape.as_ref()?.iter().map(Dim::known).collect()
    }
}

/// Formats a shape like `[batch, 3, 224, 224]` (or `[?]` for unknown rank).
pub fn shape_string(shape: &Option<Vec<Dim>>) -> String {
    match shape {
        None => "[?..]".into(),
        Some(dims) => format!(
            "[{}]",
            dims.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[derive(Clone, Debug)]
pub struct Value {
    pub name: String,
    pub fact: Fact,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub name: String,
    pub op: Op,
    /// `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<ValueId>,
}

/// A model in kiln's IR. Invariants (checked by `Graph::validate`): nodes are in
/// topological order, every value has exactly one producer (a node, a graph input,
/// or a constant), and every node input is produced before it is used.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    /// The default-domain opset the model was imported from.
    pub opset: i64,
}

impl Graph {
    pub fn add_value(&mut self, name: impl Into<String>, fact: Fact) -> ValueId {
        self.values.push(Value {
            name: name.into(),
            fact,
        });
        self.values.len() - 1
    }

    pub fn add_constant(&mut self, name: impl Into<String>, t: Tensor) -> ValueId {
        self.add_value(name, Fact::constant(t))
    }

    pub fn constant(&self, id: ValueId) -> Option<&Tensor> {
        self.values[id].fact.value.as_ref()
    }

    /// Op counts by the IR's op names, sorted by name.
    pub fn op_counts(&self) -> Vec<(&'static str, usize)> {
        let mut counts: HashMap<&'static str, usize> = HashMap::new();
        for node in &self.nodes {
            *counts.entry(node.op.name()).or_default() += 1;
        }
        let mut v: Vec<_> = counts.into_iter().collect();
        v.sort();
        v
    }

    /// Number of elements in constant floating-point tensors (the model's parameters).
    pub fn parameter_count(&self) -> usize {
        self.values
            .iter()
            .filter_map(|v| v.fact.value.as_ref())
            .filter(|t| matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16 | DType::F64))
            .map(Tensor::len)
            .sum()
    }

    /// For each value, the index of the last node that reads it (`usize::MAX` for graph outputs).
    pub fn last_uses(&self) -> Vec<Option<usize>> {
        let mut last = vec![None; self.values.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for &input in node.inputs.iter().flatten() {
                last[input] = Some(i);
            }
        }
        for &out in &self.outputs {
            last[out] = Some(usize::MAX);
        }
        last
    }
}
