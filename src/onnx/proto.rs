//! The ONNX messages kiln reads, decoded from the wire format by hand.
//!
//! Why not a protobuf crate: `onnx-protobuf` pins `protobuf = "=3.4.0"`, copies every
//! `raw_data` into a `Vec` and is MPL-2.0; `prost` + generated code works but adds a
//! code generator and several crates. These ~300 lines borrow every byte string from
//! the input buffer (a memory map), so tensor data is never copied while parsing, and
//! fields kiln does not use are skipped. Field numbers are from `onnx/onnx.proto`.

use crate::error::{Error, Result};
use crate::onnx::wire::{Reader, WireType};

/// Deeper nesting than this (graphs inside attributes inside graphs…) is rejected,
/// so a hostile file cannot overflow the stack.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Default)]
pub struct ModelProto<'a> {
    pub ir_version: i64,
    pub producer_name: &'a str,
    pub opset_import: Vec<OpsetId<'a>>,
    pub graph: Option<GraphProto<'a>>,
}

#[derive(Debug, Default, Clone)]
pub struct OpsetId<'a> {
    pub domain: &'a str,
    pub version: i64,
}

#[derive(Debug, Default)]
pub struct GraphProto<'a> {
    pub name: &'a str,
    pub nodes: Vec<NodeProto<'a>>,
    pub initializers: Vec<TensorProto<'a>>,
    pub inputs: Vec<ValueInfoProto<'a>>,
    pub outputs: Vec<ValueInfoProto<'a>>,
    pub value_info: Vec<ValueInfoProto<'a>>,
    pub has_sparse_initializers: bool,
}

#[derive(Debug, Default)]
pub struct NodeProto<'a> {
    pub inputs: Vec<&'a str>,
    pub outputs: Vec<&'a str>,
    pub name: &'a str,
    pub op_type: &'a str,
    pub domain: &'a str,
    pub attributes: Vec<AttributeProto<'a>>,
}

/// `AttributeProto.AttributeType`
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub enum AttrType {
    #[default]
    Undefined,
    Float,
    Int,
    String,
    Tensor,
    Graph,
    Floats,
    Ints,
    Strings,
    Tensors,
    Graphs,
    Other(i64),
}

impl AttrType {
    fn from_code(code: i64) -> AttrType {
        match code {
            0 => AttrType::Undefined,
            1 => AttrType::Float,
            2 => AttrType::Int,
            3 => AttrType::String,
            4 => AttrType::Tensor,
            5 => AttrType::Graph,
            6 => AttrType::Floats,
            7 => AttrType::Ints,
            8 => AttrType::Strings,
            9 => AttrType::Tensors,
            10 => AttrType::Graphs,
            c => AttrType::Other(c),
        }
    }
}

#[derive(Debug, Default)]
pub struct AttributeProto<'a> {
    pub name: &'a str,
    pub kind: AttrType,
    pub f: f32,
    pub i: i64,
    pub s: &'a [u8],
    pub t: Option<TensorProto<'a>>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
    pub strings: Vec<&'a [u8]>,
    /// Subgraphs (If/Loop bodies) are not run by kiln; their presence is recorded
    /// so the importer can report the op as unsupported.
    pub has_graph: bool,
    /// Set when the attribute refers to a function attribute instead of a value.
    pub ref_attr_name: &'a str,
}

#[derive(Debug, Default, Clone)]
pub struct TensorProto<'a> {
    pub dims: Vec<i64>,
    pub data_type: i32,
    pub name: &'a str,
    pub raw_data: Option<&'a [u8]>,
    pub float_data: Vec<f32>,
    pub int32_data: Vec<i64>,
    pub int64_data: Vec<i64>,
    pub double_data: Vec<u64>,
    pub uint64_data: Vec<u64>,
    pub string_count: usize,
    /// `data_location == EXTERNAL`
    pub external: bool,
    pub external_data: Vec<(&'a str, &'a str)>,
    pub has_segment: bool,
}

#[derive(Debug, Default)]
pub struct ValueInfoProto<'a> {
    pub name: &'a str,
    /// `None` when the type is not a tensor (sequence, map, optional…) or is absent.
    pub tensor_type: Option<TensorTypeProto<'a>>,
    pub non_tensor_type: bool,
}

#[derive(Debug, Default)]
pub struct TensorTypeProto<'a> {
    pub elem_type: i32,
    /// `None` when the shape is unknown (not even the rank).
    pub shape: Option<Vec<DimProto<'a>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DimProto<'a> {
    Value(i64),
    Param(&'a str),
    Unknown,
}

fn depth_check(depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(Error::malformed(format!(
            "messages nested deeper than {MAX_DEPTH} levels"
        )));
    }
    Ok(())
}

fn expect_len(wire: WireType, what: &str) -> Result<()> {
    if wire != WireType::Len {
        return Err(Error::malformed(format!(
            "{what}: expected a length-delimited field"
        )));
    }
    Ok(())
}

fn as_i32(v: i64, what: &str) -> Result<i32> {
    i32::try_from(v).map_err(|_| Error::malformed(format!("{what} out of range: {v}")))
}

impl<'a> ModelProto<'a> {
    pub fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut m = ModelProto::default();
        let mut r = Reader::new(buf);
        while let Some((field, wire)) = r.next_field()? {
            match (field, wire) {
                (1, WireType::Varint) => m.ir_version = r.int64()?,
                (2, WireType::Len) => m.producer_name = r.string()?,
                (7, WireType::Len) => m.graph = Some(GraphProto::decode(r.bytes()?, 1)?),
                (8, WireType::Len) => m.opset_import.push(OpsetId::decode(r.bytes()?)?),
                (1 | 2 | 7 | 8, _) => {
                    return Err(Error::malformed(format!(
                        "ModelProto field {field}: wrong wire type"
                    )))
                }
                _ => r.skip(wire)?,
            }
        }
        Ok(m)
    }
}

impl<'a> OpsetId<'a> {
    fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut o = OpsetId::default();
        let mut r = Reader::new(buf);
        while let Some((field, wire)) = r.next_field()? {
            match (field, wire) {
                (1, WireType::Len) => o.domain = r.string()?,
                (2, WireType::Varint) => o.version = r.int64()?,
                _ => r.skip(wire)?,
            }
        }
        Ok(o)
    }
}

impl<'a> GraphProto<'a> {
    pub fn decode(buf: &'a [u8], depth: usize) -> Result<Self> {
        depth_check(depth)?;
        let mut g = GraphProto::default();
        let mut r = Reader::new(buf);
        while let Some((field, wire)) = r.next_field()? {
            match field {
                1 => {
                    expect_len(wire, "GraphProto.node")?;
                    g.nodes.push(NodeProto::decode(r.bytes()?, depth + 1)?)
                }
                2 if wire == WireType::Len => g.name = r.string()?,
                5 => {
                    expect_len(wire, "GraphProto.initializer")?;
                    g.initializers.push(TensorProto::decode(r.bytes()?)?)
                }
                11..=13 => {
                    expect_len(wire, "GraphProto value info")?;
                    let vi = ValueInfoProto::decode(r.bytes()?)?;
                    match field {
                        11 => g.inputs.push(vi),
                        12 => g.outputs.push(vi),
                        _ => g.value_info.push(vi),
                    }
                }
                15 => {
                    g.has_sparse_initializers = true;
                    r.skip(wire)?
                }
                _ => r.skip(wire)?,
            }
        }
        Ok(g)
    }
}

impl<'a> NodeProto<'a> {
    fn decode(buf: &'a [u8], depth: usize) -> Result<Self> {
        let mut n = NodeProto::default();
        let mut r = Reader::new(buf);
        while let Some((field, wire)) = r.next_field()? {
            match field {
                1..=5 | 7 => expect_len(wire, "NodeProto field")?,
                _ => {}
            }
            match field {
                1 => n.inputs.push(r.string()?),
                2 => n.outputs.push(r.string()?),
                3 => n.name = r.string()?,
                4 => n.op_type = r.string()?,
                5 => n.attributes.push(AttributeProto::decode(r.bytes()?, depth + 1)?),
                7 => n.domain = r.string()?,
                _ => r.skip(wire)?,
            }
        }
        Ok(n)
    }
}

impl<'a> AttributeProto<'a> {
    fn decode(buf: &'a [u8], depth: usize) -> Result<Self> {
        depth_check(depth)?;
        let mut a = AttributeProto::default();
        let mut r = Reader::new(buf);
        while let Some((field, wire)) = r.next_field()? {
            match (field, wire) {
                (1, WireType::Len) => a.name = r.string()?,
                (2, WireType::Fixed32) => a.f = f32::from_bits(r.fixed32()?),
                (3, WireType::Varint) => a.i = r.int64()?,
                (4, WireType::Len) => a.s = r.bytes()?,
                (5, WireType::Len) => a.t = Some(TensorProto::decode(r.bytes()?)?),
                (6, WireType::Len) => {
                    // Decoded only to validate it; kiln does not execute subgraphs.
                    GraphProto::decode(r.bytes()?, depth + 1)?;
                    a.has_graph = true;
                }
                (7, _) => r.repeated_f32(wire, &mut a.floats)?,
                (8, _) => r.repeated_varint(wire, &mut a.ints)?,
                (9, WireType::Len) => a.strings.push(r.bytes()?),
                (11, WireType::Len) => {
                    GraphProto::decode(r.bytes()?, depth + 1)?;
                    a.has_graph = true;
                }
                (20, WireType::Varint) => a.kind = AttrType::from_code(r.int64()?),
                (21, WireType::Len) => a.ref_attr_name = r.string()?,
                (1..=9 | 11 | 20 | 21, _) => {
                    return Err(Error::malformed(format!(
                        "attribute '{}' field {field}: wrong wire type",
                        a.name
                    )))
                }
                _ => r.skip(wire)?,
            }
        }
        Ok(a)
    }
}

impl<'a> TensorProto<'a> {
    pub fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut t = TensorProto::default();
        let mut r = Reader::new(buf);
        while let Some((field, wire)) = r.next_field()? {
            match field {
                1 => r.repeated_varint(wire, &mut t.dims)?,
                2 if wire == WireType::Varint => t.data_type = as_i32(r.int64()?, "data_type")?,
                3 => {
                    t.has_segment = true;
                    r.skip(wire)?
                }
                4 => r.repeated_f32(wire, &mut t.float_data)?,
                5 => r.repeated_varint(wire, &mut t.int32_data)?,
                6 => {
                    t.string_count += 1;
                    r.skip(wire)?
                }
                7 => r.repeated_varint(wire, &mut t.int64_data)?,
                8 if wire == WireType::Len => t.name = r.string()?,
                9 if wire == WireType::Len => t.raw_data = Some(r.bytes()?),
                10 => r.repeated_u64(wire, true, &mut t.double_data)?,
                11 => r.repeated_u64(wire, false, &mut t.uint64_data)?,
                13 if wire == WireType::Len => {
                    let mut e = Reader::new(r.bytes()?);
                    let (mut key, mut value) = ("", "");
                    while let Some((f, w)) = e.next_field()? {
                        match (f, w) {
                            (1, WireType::Len) => key = e.string()?,
                            (2, WireType::Len) => value = e.string()?,
                            _ => e.skip(w)?,
                        }
                    }
                    t.external_data.push((key, value));
                }
                14 if wire == WireType::Varint => t.external = r.int64()? == 1,
                2 | 8 | 9 | 13 | 14 => {
                    return Err(Error::malformed(format!(
                        "TensorProto field {field}: wrong wire type"
                    )))
                }
                _ => r.skip(wire)?,
            }
        }
        Ok(t)
    }
}

impl<'a> ValueInfoProto<'a> {
    fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut v = ValueInfoProto::default();
        let mut r = Reader::new(buf);
        while let Some((field, wire)) = r.next_field()? {
            match (field, wire) {
                (1, WireType::Len) => v.name = r.string()?,
                (2, WireType::Len) => {
                    let mut tr = Reader::new(r.bytes()?);
                    while let Some((f, w)) = tr.next_field()? {
                        match (f, w) {
                            (1, WireType::Len) => v.tensor_type = Some(TensorTypeProto::decode(tr.bytes()?)?),
                            (_, w) => {
                                v.non_tensor_type = true;
                                tr.skip(w)?
                            }
                        }
                    }
                }
                _ => r.skip(wire)?,
            }
        }
        Ok(v)
    }
}

impl<'a> TensorTypeProto<'a> {
    fn decode(buf: &'a [u8]) -> Result<Self> {
        let mut t = TensorTypeProto::default();
        let mut r = Reader::new(buf);
        while let Some((field, wire)) = r.next_field()? {
            match (field, wire) {
                (1, WireType::Varint) => t.elem_type = as_i32(r.int64()?, "elem_type")?,
                (2, WireType::Len) => {
                    let mut dims = Vec::new();
                    let mut sr = Reader::new(r.bytes()?);
                    while let Some((f, w)) = sr.next_field()? {
                        if (f, w) != (1, WireType::Len) {
                            sr.skip(w)?;
                            continue;
                        }
                        let mut dim = DimProto::Unknown;
                        let mut dr = Reader::new(sr.bytes()?);
                        while let Some((df, dw)) = dr.next_field()? {
                            match (df, dw) {
                                (1, WireType::Varint) => dim = DimProto::Value(dr.int64()?),
                                (2, WireType::Len) => dim = DimProto::Param(dr.string()?),
                                _ => dr.skip(dw)?,
                            }
                        }
                        dims.push(dim);
                    }
                    t.shape = Some(dims);
                }
                _ => r.skip(wire)?,
            }
        }
        Ok(t)
    }
}
