//! kiln's intermediate representation: a typed graph with shape facts.

pub mod graph;
pub mod ops;
pub mod shape;
pub mod window;

pub use graph::{Dim, Fact, Graph, Node, Value, ValueId};
pub use ops::Op;
