//! ONNX front end: protobuf decoding, tensor and external-data loading, and import
//! into kiln's IR. Nothing past this module sees ONNX strings or protobuf types.

pub mod attrs;
pub mod import;
pub mod load;
pub mod proto;
pub mod wire;
pub mod write;

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::ir::Graph;
use crate::tensor::{SharedBytes, Tensor};
pub use load::Limits;

/// Decodes and imports a model held in `bytes`; external data is looked up in `dir`.
pub fn load_graph(bytes: &SharedBytes, dir: Option<PathBuf>, limits: &Limits) -> Result<Graph> {
    let model = proto::ModelProto::decode((**bytes).as_ref())?;
    let mut external = load::ExternalData::new(dir);
    let mut src = load::Source {
        bytes,
        external: &mut external,
        limits,
    };
    import::import(&model, &mut src)
}

/// Memory-maps and imports a model file.
pub fn load_graph_file(path: &Path, limits: &Limits) -> Result<Graph> {
    let bytes = load::map_file(path)?;
    let dir = path
        .parent()
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .map(Path::to_path_buf);
    load_graph(&bytes, dir, limits)
}

/// Decodes a serialized `TensorProto` (the `.pb` files of ONNX test data).
pub fn parse_tensor_proto(bytes: &[u8]) -> Result<(String, Tensor)> {
    let shared: SharedBytes = std::sync::Arc::new(bytes.to_vec());
    let proto = proto::TensorProto::decode((*shared).as_ref())?;
    let mut external = load::ExternalData::new(None);
    let limits = Limits::default();
    let mut src = load::Source {
        bytes: &shared,
        external: &mut external,
        limits: &limits,
    };
    let t = load::tensor_from_proto(&proto, &mut src)?;
    Ok((proto.name.to_string(), t))
}

/// `(domain, op_type)` of every node of the main graph, in file order.
pub fn op_types(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    let model = proto::ModelProto::decode(bytes)?;
    let graph = model
        .graph
        .ok_or_else(|| crate::error::Error::invalid("model has no graph"))?;
    Ok(graph
        .nodes
        .iter()
        .map(|n| (n.domain.to_string(), n.op_type.to_string()))
        .collect())
}
