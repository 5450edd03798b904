//! A small protobuf encoder for the part of ONNX that kiln writes (the model zoo).
//!
//! Hand-written on purpose: kiln has no protobuf dependency, and the subset needed to
//! describe an inference graph (nodes, attributes, initializers, typed inputs and
//! outputs) is a few dozen lines. Messages are written in field-number order, as
//! protobuf's own serializers do, so the bytes look like any exporter's output.
//!
//! Size matters more than elegance here: a large model is hundreds of megabytes of
//! initializers. Each initializer is encoded once, straight into its own buffer with
//! its length computed up front, and [`ModelWriter::finish`] copies each buffer into
//! the model exactly once, freeing it as it goes, so peak memory stays near one copy.

use crate::error::{Error, Result};
use crate::tensor::{checked_numel, DType};

/// The IR version written. ONNX Runtime 1.31 rejects IR versions above 13; 8 is the
/// first with everything the zoo needs (initializers need not be graph inputs).
pub const IR_VERSION: i64 = 8;

/// Default-domain opset written: Clip takes its bounds as inputs (opset >= 11) and
/// every op the zoo uses is in its final form.
pub const OPSET: i64 = 17;

/// Protobuf's hard limit on one message; ONNX Runtime refuses larger files.
const MAX_MESSAGE: usize = i32::MAX as usize;

// Wire types.
const VARINT: u32 = 0;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

// ---------------------------------------------------------------------------------
// Primitives.

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn tag_len(field: u32) -> usize {
    varint_len(u64::from(field) << 3)
}

fn put_tag(buf: &mut Vec<u8>, field: u32, wire: u32) {
    put_varint(buf, u64::from((field << 3) | wire));
}

/// `int64`/`int32`/enum fields: negative values are sign-extended to ten bytes, as
/// protobuf requires (no zigzag; that is only for `sint64`).
fn put_int(buf: &mut Vec<u8>, field: u32, v: i64) {
    put_tag(buf, field, VARINT);
    put_varint(buf, v as u64);
}

fn put_bytes(buf: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_tag(buf, field, LEN);
    put_varint(buf, bytes.len() as u64);
    buf.extend_from_slice(bytes);
}

fn put_f32(buf: &mut Vec<u8>, field: u32, v: f32) {
    put_tag(buf, field, FIXED32);
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Bytes of a length-delimited field holding `len` payload bytes.
fn len_field_size(field: u32, len: usize) -> usize {
    tag_len(field) + varint_len(len as u64) + len
}

fn packed_ints_len(values: &[i64]) -> usize {
    values.iter().map(|&v| varint_len(v as u64)).sum()
}

/// A packed repeated varint field; written only when non-empty (an empty packed
/// field and an absent one mean the same, and absent is what exporters write).
fn put_packed_ints(buf: &mut Vec<u8>, field: u32, values: &[i64]) {
    if values.is_empty() {
        return;
    }
    put_tag(buf, field, LEN);
    put_varint(buf, packed_ints_len(values) as u64);
    for &v in values {
        put_varint(buf, v as u64);
    }
}

fn put_packed_f32(buf: &mut Vec<u8>, field: u32, values: &[f32]) {
    if values.is_empty() {
        return;
    }
    put_tag(buf, field, LEN);
    put_varint(buf, (values.len() * 4) as u64);
    extend_f32_le(buf, values);
}

/// Appends `values` as little-endian bytes; one `memcpy` on little-endian targets,
/// which matters for hundreds of megabytes of weights.
fn extend_f32_le(buf: &mut Vec<u8>, values: &[f32]) {
    if cfg!(target_endian = "little") {
        buf.extend_from_slice(bytemuck::cast_slice(values));
    } else {
        buf.reserve(values.len() * 4);
        for v in values {
            buf.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn dims_i64(dims: &[usize]) -> Result<Vec<i64>> {
    dims.iter()
        .map(|&d| i64::try_from(d).map_err(|_| Error::Limit(format!("dimension {d} does not fit in int64"))))
        .collect()
}

// ---------------------------------------------------------------------------------
// Attributes.

/// `AttributeProto.AttributeType` codes.
mod attr_type {
    pub const FLOAT: i64 = 1;
    pub const INT: i64 = 2;
    pub const STRING: i64 = 3;
    pub const TENSOR: i64 = 4;
    pub const FLOATS: i64 = 6;
    pub const INTS: i64 = 7;
}

/// A constant tensor as an attribute value (for `Constant` nodes).
#[derive(Clone, Debug, PartialEq)]
pub struct RawTensor {
    pub dims: Vec<usize>,
    pub dtype: DType,
    /// Little-endian element bytes, `numel * dtype.size()` of them.
    pub raw_data: Vec<u8>,
}

/// The value of a node attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Float(f32),
    Int(i64),
    String(Vec<u8>),
    Tensor(RawTensor),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
}

/// A named node attribute.
#[derive(Clone, Debug, PartialEq)]
pub struct Attribute {
    pub name: String,
    pub value: AttrValue,
}

impl Attribute {
    pub fn float(name: &str, v: f32) -> Attribute {
        Attribute {
            name: name.into(),
            value: AttrValue::Float(v),
        }
    }

    pub fn int(name: &str, v: i64) -> Attribute {
        Attribute {
            name: name.into(),
            value: AttrValue::Int(v),
        }
    }

    pub fn string(name: &str, v: &str) -> Attribute {
        Attribute {
            name: name.into(),
            value: AttrValue::String(v.as_bytes().to_vec()),
        }
    }

    pub fn tensor(name: &str, t: RawTensor) -> Attribute {
        Attribute {
            name: name.into(),
            value: AttrValue::Tensor(t),
        }
    }

    pub fn floats(name: &str, v: &[f32]) -> Attribute {
        Attribute {
            name: name.into(),
            value: AttrValue::Floats(v.to_vec()),
        }
    }

    pub fn ints(name: &str, v: &[i64]) -> Attribute {
        Attribute {
            name: name.into(),
            value: AttrValue::Ints(v.to_vec()),
        }
    }

    fn encode(&self) -> Result<Vec<u8>> {
        let mut b = Vec::new();
        put_bytes(&mut b, 1, self.name.as_bytes());
        let kind = match &self.value {
            AttrValue::Float(v) => {
                put_f32(&mut b, 2, *v);
                attr_type::FLOAT
            }
            AttrValue::Int(v) => {
                put_int(&mut b, 3, *v);
                attr_type::INT
            }
            AttrValue::String(v) => {
                put_bytes(&mut b, 4, v);
                attr_type::STRING
            }
            AttrValue::Tensor(t) => {
                put_bytes(&mut b, 5, &encode_tensor("", &t.dims, t.dtype, &t.raw_data)?);
                attr_type::TENSOR
            }
            AttrValue::Floats(v) => {
                put_packed_f32(&mut b, 7, v);
                attr_type::FLOATS
            }
            AttrValue::Ints(v) => {
                put_packed_ints(&mut b, 8, v);
                attr_type::INTS
            }
        };
        put_int(&mut b, 20, kind);
        Ok(b)
    }
}

/// A `TensorProto` with `raw_data`: dims=1, data_type=2, name=8, raw_data=9.
fn encode_tensor(name: &str, dims: &[usize], dtype: DType, raw: &[u8]) -> Result<Vec<u8>> {
    let mut b = Vec::new();
    write_tensor(&mut b, name, dims, dtype, raw)?;
    Ok(b)
}

/// Writes the fields of a `TensorProto` (not its own tag) and checks the byte count.
fn write_tensor(buf: &mut Vec<u8>, name: &str, dims: &[usize], dtype: DType, raw: &[u8]) -> Result<()> {
    let numel = checked_numel(dims).ok_or_else(|| Error::Limit(format!("shape {dims:?} overflows")))?;
    if numel.checked_mul(dtype.size()) != Some(raw.len()) {
        return Err(Error::Usage(format!(
            "tensor '{name}' of shape {dims:?} and type {dtype} needs {numel} elements, got {} bytes",
            raw.len()
        )));
    }
    put_packed_ints(buf, 1, &dims_i64(dims)?);
    put_int(buf, 2, i64::from(dtype.onnx_code()));
    if !name.is_empty() {
        put_bytes(buf, 8, name.as_bytes());
    }
    put_bytes(buf, 9, raw);
    Ok(())
}

/// Payload size of a `TensorProto` as [`write_tensor`] writes it, without the data.
fn tensor_len(name: &str, dims: &[i64], dtype: DType, raw_len: usize) -> usize {
    let dims_len = if dims.is_empty() {
        0
    } else {
        len_field_size(1, packed_ints_len(dims))
    };
    let name_len = if name.is_empty() {
        0
    } else {
        len_field_size(8, name.len())
    };
    dims_len + tag_len(2) + varint_len(dtype.onnx_code() as u64) + name_len + len_field_size(9, raw_len)
}

// ---------------------------------------------------------------------------------
// Graph.

/// One dimension of a declared input or output shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Fixed(usize),
    /// A symbolic dimension such as `"batch"`.
    Param(String),
}

impl From<usize> for Dim {
    fn from(d: usize) -> Dim {
        Dim::Fixed(d)
    }
}

impl From<&str> for Dim {
    fn from(p: &str) -> Dim {
        Dim::Param(p.into())
    }
}

/// `ValueInfoProto{name=1, type=2: TypeProto{tensor_type=1: {elem_type=1, shape=2}}}`.
fn encode_value_info(name: &str, dtype: DType, dims: &[Dim]) -> Result<Vec<u8>> {
    let mut shape = Vec::new();
    for d in dims {
        let mut dim = Vec::new();
        match d {
            Dim::Fixed(v) => put_int(&mut dim, 1, dims_i64(&[*v])?[0]),
            Dim::Param(p) => put_bytes(&mut dim, 2, p.as_bytes()),
        }
        put_bytes(&mut shape, 1, &dim);
    }
    let mut tensor_type = Vec::new();
    put_int(&mut tensor_type, 1, i64::from(dtype.onnx_code()));
    put_bytes(&mut tensor_type, 2, &shape);
    let mut type_proto = Vec::new();
    put_bytes(&mut type_proto, 1, &tensor_type);
    let mut b = Vec::new();
    put_bytes(&mut b, 1, name.as_bytes());
    put_bytes(&mut b, 2, &type_proto);
    Ok(b)
}

/// Accumulates the fields of a `GraphProto`. Each repeated field has its own buffer
/// so the encoding comes out in field-number order whatever order calls arrive in.
#[derive(Debug, Default)]
pub struct GraphBuilder {
    name: String,
    doc_string: String,
    nodes: Vec<u8>,
    /// One fully encoded `initializer` field (tag, length, message) per tensor.
    initializers: Vec<Vec<u8>>,
    inputs: Vec<u8>,
    outputs: Vec<u8>,
    value_infos: Vec<u8>,
}

impl GraphBuilder {
    pub fn new(name: &str) -> GraphBuilder {
        GraphBuilder {
            name: name.into(),
            ..GraphBuilder::default()
        }
    }

    pub fn set_doc_string(&mut self, doc: &str) {
        self.doc_string = doc.into();
    }

    /// Adds a float32 initializer.
    pub fn add_initializer(&mut self, name: &str, dims: &[usize], data: &[f32]) -> Result<()> {
        let numel = checked_numel(dims).ok_or_else(|| Error::Limit(format!("shape {dims:?} overflows")))?;
        if numel != data.len() {
            return Err(Error::Usage(format!(
                "initializer '{name}' of shape {dims:?} needs {numel} elements, got {}",
                data.len()
            )));
        }
        let raw_len = data.len() * 4;
        let body = tensor_len(name, &dims_i64(dims)?, DType::F32, raw_len);
        let mut b = Vec::with_capacity(len_field_size(5, body));
        put_tag(&mut b, 5, LEN);
        put_varint(&mut b, body as u64);
        put_packed_ints(&mut b, 1, &dims_i64(dims)?);
        put_int(&mut b, 2, i64::from(DType::F32.onnx_code()));
        put_bytes(&mut b, 8, name.as_bytes());
        put_tag(&mut b, 9, LEN);
        put_varint(&mut b, raw_len as u64);
        extend_f32_le(&mut b, data);
        debug_assert_eq!(b.len(), len_field_size(5, body));
        self.initializers.push(b);
        Ok(())
    }

    /// Adds an initializer of any type from its little-endian bytes.
    pub fn add_initializer_raw(
        &mut self,
        name: &str,
        dims: &[usize],
        dtype: DType,
        raw: &[u8],
    ) -> Result<()> {
        let mut b = Vec::new();
        put_bytes(&mut b, 5, &encode_tensor(name, dims, dtype, raw)?);
        self.initializers.push(b);
        Ok(())
    }

    /// Adds a node of the default (`ai.onnx`) domain.
    pub fn add_node(
        &mut self,
        name: &str,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: &[Attribute],
    ) -> Result<()> {
        self.add_domain_node("", name, op_type, inputs, outputs, attrs)
    }

    /// Adds a node; `domain` is written only when not the default `""`.
    pub fn add_domain_node(
        &mut self,
        domain: &str,
        name: &str,
        op_type: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: &[Attribute],
    ) -> Result<()> {
        let mut b = Vec::new();
        for i in inputs {
            put_bytes(&mut b, 1, i.as_bytes());
        }
        for o in outputs {
            put_bytes(&mut b, 2, o.as_bytes());
        }
        if !name.is_empty() {
            put_bytes(&mut b, 3, name.as_bytes());
        }
        put_bytes(&mut b, 4, op_type.as_bytes());
        for a in attrs {
            put_bytes(&mut b, 5, &a.encode()?);
        }
        if !domain.is_empty() {
            put_bytes(&mut b, 7, domain.as_bytes());
        }
        put_bytes(&mut self.nodes, 1, &b);
        Ok(())
    }

    /// Declares a graph input.
    pub fn input(&mut self, name: &str, dtype: DType, dims: &[Dim]) -> Result<()> {
        put_bytes(&mut self.inputs, 11, &encode_value_info(name, dtype, dims)?);
        Ok(())
    }

    /// Declares a graph output.
    pub fn output(&mut self, name: &str, dtype: DType, dims: &[Dim]) -> Result<()> {
        put_bytes(&mut self.outputs, 12, &encode_value_info(name, dtype, dims)?);
        Ok(())
    }

    /// Records the type and shape of an intermediate value.
    pub fn value_info(&mut self, name: &str, dtype: DType, dims: &[Dim]) -> Result<()> {
        put_bytes(&mut self.value_infos, 13, &encode_value_info(name, dtype, dims)?);
        Ok(())
    }

    /// Number of bytes the encoded `GraphProto` payload will take.
    fn encoded_len(&self) -> usize {
        let strings = [(2, &self.name), (10, &self.doc_string)]
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|&(f, s)| len_field_size(f, s.len()))
            .sum::<usize>();
        let inits = self.initializers.iter().map(Vec::len).sum::<usize>();
        strings + inits + self.nodes.len() + self.inputs.len() + self.outputs.len() + self.value_infos.len()
    }

    /// Finishes a model with the default [`ModelWriter`] settings.
    pub fn finish(self) -> Result<Vec<u8>> {
        ModelWriter::default().finish(self)
    }
}

/// The `ModelProto` around a graph.
#[derive(Clone, Debug)]
pub struct ModelWriter {
    pub ir_version: i64,
    /// `(domain, version)` pairs; `""` is the default ONNX domain.
    pub opset_import: Vec<(String, i64)>,
    pub producer_name: String,
    pub producer_version: String,
}

impl Default for ModelWriter {
    fn default() -> ModelWriter {
        ModelWriter {
            ir_version: IR_VERSION,
            opset_import: vec![(String::new(), OPSET)],
            producer_name: "kiln".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

impl ModelWriter {
    /// Encodes the model. Fails if it would exceed protobuf's 2 GiB message limit,
    /// which no reader accepts.
    pub fn finish(&self, graph: GraphBuilder) -> Result<Vec<u8>> {
        let mut head = Vec::new();
        put_int(&mut head, 1, self.ir_version);
        put_bytes(&mut head, 2, self.producer_name.as_bytes());
        put_bytes(&mut head, 3, self.producer_version.as_bytes());
        let mut tail = Vec::new();
        for (domain, version) in &self.opset_import {
            let mut op = Vec::new();
            put_bytes(&mut op, 1, domain.as_bytes());
            put_int(&mut op, 2, *version);
            put_bytes(&mut tail, 8, &op);
        }

        let graph_len = graph.encoded_len();
        let total = head.len() + len_field_size(7, graph_len) + tail.len();
        if total > MAX_MESSAGE {
            return Err(Error::Limit(format!(
                "model would be {total} bytes; protobuf messages are limited to {MAX_MESSAGE}"
            )));
        }

        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&head);
        put_tag(&mut out, 7, LEN);
        put_varint(&mut out, graph_len as u64);
        out.extend_from_slice(&graph.nodes);
        if !graph.name.is_empty() {
            put_bytes(&mut out, 2, graph.name.as_bytes());
        }
        // Each initializer is freed right after it is copied, so a 300 MB model
        // never needs much more than 300 MB.
        for init in graph.initializers {
            out.extend_from_slice(&init);
        }
        if !graph.doc_string.is_empty() {
            put_bytes(&mut out, 10, graph.doc_string.as_bytes());
        }
        out.extend_from_slice(&graph.inputs);
        out.extend_from_slice(&graph.outputs);
        out.extend_from_slice(&graph.value_infos);
        out.extend_from_slice(&tail);
        debug_assert_eq!(out.len(), total);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal protobuf reader, enough to check what the writer produced.
    struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    #[derive(Debug, PartialEq)]
    enum Value<'a> {
        Varint(u64),
        Fixed32(u32),
        Bytes(&'a [u8]),
    }

    impl<'a> Reader<'a> {
        fn new(buf: &'a [u8]) -> Self {
            Reader { buf, pos: 0 }
        }

        fn varint(&mut self) -> u64 {
            let mut v = 0u64;
            let mut shift = 0;
            loop {
                let b = self.buf[self.pos];
                self.pos += 1;
                v |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    return v;
                }
                shift += 7;
            }
        }

        fn field(&mut self) -> Option<(u32, Value<'a>)> {
            if self.pos == self.buf.len() {
                return None;
            }
            let key = self.varint();
            let value = match key & 7 {
                0 => Value::Varint(self.varint()),
                2 => {
                    let n = self.varint() as usize;
                    self.pos += n;
                    Value::Bytes(&self.buf[self.pos - n..self.pos])
                }
                5 => {
                    let b = &self.buf[self.pos..self.pos + 4];
                    self.pos += 4;
                    Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                }
                w => panic!("unexpected wire type {w}"),
            };
            Some(((key >> 3) as u32, value))
        }

        fn all(buf: &'a [u8]) -> Vec<(u32, Value<'a>)> {
            let mut r = Reader::new(buf);
            std::iter::from_fn(|| r.field()).collect()
        }
    }

    #[test]
    fn varints_round_trip() {
        let values = [
            0i64,
            1,
            127,
            128,
            300,
            16_383,
            16_384,
            i64::from(i32::MAX),
            i64::MAX,
            -1,
            -2,
            i64::MIN,
        ];
        for v in values {
            let mut b = Vec::new();
            put_int(&mut b, 3, v);
            assert_eq!(b.len(), 1 + varint_len(v as u64));
            let fields = Reader::all(&b);
            assert_eq!(fields, vec![(3, Value::Varint(v as u64))]);
            let Value::Varint(raw) = fields[0].1 else {
                unreachable!()
            };
            assert_eq!(raw as i64, v);
        }
        // Negative int64 values take the full ten bytes (protobuf's int64, not sint64).
        let mut b = Vec::new();
        put_varint(&mut b, -1i64 as u64);
        assert_eq!(b, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        let mut b = Vec::new();
        put_varint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
    }

    #[test]
    fn attributes_encode_with_their_type() {
        let b = Attribute::ints("pads", &[1, -1, 300]).encode().unwrap();
        let f = Reader::all(&b);
        assert_eq!(f[0], (1, Value::Bytes(b"pads")));
        let Value::Bytes(packed) = f[1].1 else {
            panic!("ints not packed")
        };
        assert_eq!(f[1].0, 8);
        let mut r = Reader::new(packed);
        assert_eq!(
            [r.varint() as i64, r.varint() as i64, r.varint() as i64],
            [1, -1, 300]
        );
        assert_eq!(f[2], (20, Value::Varint(7)));

        let b = Attribute::float("epsilon", 1e-5).encode().unwrap();
        let f = Reader::all(&b);
        assert_eq!(f[1], (2, Value::Fixed32(1e-5f32.to_bits())));
        assert_eq!(f[2], (20, Value::Varint(1)));
    }

    #[test]
    fn model_lengths_are_consistent() {
        let mut g = GraphBuilder::new("g");
        g.input("x", DType::F32, &["batch".into(), 3.into()]).unwrap();
        g.add_initializer("w", &[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
            .unwrap();
        g.add_initializer("s", &[], &[0.5]).unwrap();
        g.add_node("mm", "MatMul", &["x", "w"], &["y"], &[Attribute::int("k", -5)])
            .unwrap();
        g.output("y", DType::F32, &["batch".into(), 2.into()]).unwrap();
        assert!(g.add_initializer("bad", &[2, 2], &[1.0]).is_err());
        let bytes = g.finish().unwrap();

        let model = Reader::all(&bytes);
        let fields: Vec<u32> = model.iter().map(|f| f.0).collect();
        assert_eq!(fields, [1, 2, 3, 7, 8]);
        assert_eq!(model[0].1, Value::Varint(IR_VERSION as u64));
        let Value::Bytes(graph) = model[3].1 else { panic!() };
        let graph = Reader::all(graph);
        let fields: Vec<u32> = graph.iter().map(|f| f.0).collect();
        assert_eq!(fields, [1, 2, 5, 5, 11, 12]);
        let Value::Bytes(w) = graph[2].1 else { panic!() };
        let w = Reader::all(w);
        assert_eq!(w[1], (2, Value::Varint(1)));
        assert_eq!(w[2], (8, Value::Bytes(b"w")));
        let Value::Bytes(raw) = w[3].1 else { panic!() };
        assert_eq!(&raw[4..8], &2.0f32.to_le_bytes());
        // A scalar has no dims field at all.
        let Value::Bytes(s) = graph[3].1 else { panic!() };
        assert_eq!(Reader::all(s)[0], (2, Value::Varint(1)));
    }
}
