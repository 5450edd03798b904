//! Reading model files: memory mapping, tensor decoding and external data.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use half::{bf16, f16};

use crate::error::{Error, Result};
use crate::onnx::proto::TensorProto;
use crate::tensor::{checked_numel, Buf, DType, Data, SharedBytes, Tensor};

/// Caps on what a model may ask kiln to allocate, checked before allocating.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest element count of any one tensor (weights or activations).
    pub max_tensor_elements: usize,
    /// Largest total size of all weights, in bytes.
    pub max_weight_bytes: usize,
    /// Largest activation arena a plan may reserve, in bytes.
    pub max_arena_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tensor_elements: 1 << 32,
            max_weight_bytes: 16 << 30,
            max_arena_bytes: 32 << 30,
        }
    }
}

/// Memory-maps a file. The map is read-only and shared.
pub fn map_file(path: &Path) -> Result<SharedBytes> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    // SAFETY: the map is read-only; like every mmap-based loader we rely on the file
    // not being truncated or rewritten by another process while the session lives.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    Ok(Arc::new(map))
}

/// Resolves `TensorProto.external_data` locations inside one model folder, mapping
/// each data file once.
pub struct ExternalData {
    dir: Option<PathBuf>,
    files: HashMap<PathBuf, SharedBytes>,
}

impl ExternalData {
    /// `dir` is the model's folder; `None` for a model loaded from memory, which then
    /// cannot refer to external data.
    pub fn new(dir: Option<PathBuf>) -> Self {
        ExternalData {
            dir,
            files: HashMap::new(),
        }
    }

    fn file(&mut self, tensor: &str, location: &str) -> Result<SharedBytes> {
        let err = |message: String| Error::ExternalData {
            tensor: tensor.into(),
            message,
        };
        let dir = self
            .dir
            .as_ref()
            .ok_or_else(|| err("model was loaded from memory; external data needs a model folder".into()))?;
        let rel = Path::new(location);
        // Reject anything that is not a plain relative path before touching the disk
        // (CVE-2022-25882 / CVE-2024-27318 were exactly this).
        if location.is_empty()
            || rel
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(err(format!(
                "location '{location}' must be a relative path inside the model folder"
            )));
        }
        let canon_dir = dir
            .canonicalize()
            .map_err(|e| err(format!("model folder: {e}")))?;
        let path = canon_dir
            .join(rel)
            .canonicalize()
            .map_err(|e| err(format!("cannot open '{location}': {e}")))?;
        // Symlinks are resolved by `canonicalize`; the target must still be inside.
        if !path.starts_with(&canon_dir) {
            return Err(err(format!(
                "location '{location}' resolves outside the model folder"
            )));
        }
        if let Some(bytes) = self.files.get(&path) {
            return Ok(bytes.clone());
        }
        let bytes = map_file(&path).map_err(|e| err(e.to_string()))?;
        self.files.insert(path, bytes.clone());
        Ok(bytes)
    }
}

/// Where a model's bytes live, so that tensors can borrow them.
pub struct Source<'s> {
    pub bytes: &'s SharedBytes,
    pub external: &'s mut ExternalData,
    pub limits: &'s Limits,
}

fn dims_of(t: &TensorProto, limits: &Limits) -> Result<(Vec<usize>, usize)> {
    let shape = t
        .dims
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map_err(|_| Error::invalid(format!("tensor '{}' has negative dim {d}", t.name)))
        })
        .collect::<Result<Vec<_>>>()?;
    let numel = checked_numel(&shape)
        .filter(|&n| n <= limits.max_tensor_elements)
        .ok_or_else(|| {
            Error::Limit(format!(
                "tensor '{}' of shape {shape:?} exceeds {} elements",
                t.name, limits.max_tensor_elements
            ))
        })?;
    Ok((shape, numel))
}

/// Decodes a `TensorProto`. `raw_data` that lies inside `src.bytes` is borrowed, not
/// copied; external data is memory-mapped.
pub fn tensor_from_proto(t: &TensorProto, src: &mut Source) -> Result<Tensor> {
    let dtype = DType::from_onnx_code(t.data_type).ok_or_else(|| {
        Error::Unsupported(vec![crate::error::Unsupported {
            node: t.name.into(),
            op: "initializer".into(),
            opset: 0,
            reason: format!(
                "tensor data type {} is not supported",
                dtype_code_name(t.data_type)
            ),
        }])
    })?;
    if t.has_segment {
        return Err(Error::invalid(format!(
            "tensor '{}' uses segments, which are not supported",
            t.name
        )));
    }
    let (shape, numel) = dims_of(t, src.limits)?;
    let nbytes = numel * dtype.size();

    if t.external {
        let mut location = None;
        let (mut offset, mut length) = (0usize, None);
        let bad = |message: String| Error::ExternalData {
            tensor: t.name.into(),
            message,
        };
        for &(k, v) in &t.external_data {
            let num = || {
                v.parse::<usize>()
                    .map_err(|_| bad(format!("{k} '{v}' is not a number")))
            };
            match k {
                "location" => location = Some(v),
                "offset" => offset = num()?,
                "length" => length = Some(num()?),
                _ => {}
            }
        }
        let location = location.ok_or_else(|| bad("no location".into()))?;
        let file = src.external.file(t.name, location)?;
        let file_len = (*file).as_ref().len();
        let length = length.unwrap_or(nbytes);
        if length != nbytes {
            return Err(bad(format!(
                "length {length} does not match {nbytes} bytes for shape {shape:?}"
            )));
        }
        if offset.checked_add(length).is_none_or(|end| end > file_len) {
            return Err(bad(format!(
                "range {offset}+{length} exceeds file size {file_len} of '{location}'"
            )));
        }
        return Tensor::new(shape, Data::from_bytes(dtype, file, offset, numel));
    }

    if let Some(raw) = t.raw_data {
        if raw.len() != nbytes {
            return Err(Error::invalid(format!(
                "tensor '{}': raw_data has {} bytes, shape {shape:?} of {dtype} needs {nbytes}",
                t.name,
                raw.len()
            )));
        }
        let base = (**src.bytes).as_ref();
        let start = (raw.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
        let data = if start <= base.len() && start + raw.len() <= base.len() {
            Data::from_bytes(dtype, src.bytes.clone(), start, numel)
        } else {
            Data::from_bytes(dtype, Arc::new(raw.to_vec()), 0, numel)
        };
        return Tensor::new(shape, data);
    }

    if t.string_count > 0 {
        return Err(Error::Unsupported(vec![crate::error::Unsupported {
            node: t.name.into(),
            op: "initializer".into(),
            opset: 0,
            reason: "string tensors are not supported".into(),
        }]));
    }
    let data = typed_fields(t, dtype)?;
    if data.len() != numel {
        return Err(Error::invalid(format!(
            "tensor '{}' has {} values for shape {shape:?}",
            t.name,
            data.len()
        )));
    }
    Tensor::new(shape, data)
}

/// Decodes the typed repeated fields (`float_data`, `int32_data`…), used by small
/// tensors written without `raw_data`.
fn typed_fields(t: &TensorProto, dtype: DType) -> Result<Data> {
    let i32s = &t.int32_data;
    Ok(match dtype {
        DType::F32 => Data::F32(Buf::from_vec(t.float_data.clone())),
        DType::F64 => Data::F64(Buf::from_vec(
            t.double_data.iter().map(|&b| f64::from_bits(b)).collect(),
        )),
        DType::F16 => Data::F16(Buf::from_vec(
            i32s.iter().map(|&b| f16::from_bits(b as u16)).collect(),
        )),
        DType::BF16 => Data::BF16(Buf::from_vec(
            i32s.iter().map(|&b| bf16::from_bits(b as u16)).collect(),
        )),
        DType::I8 => Data::I8(Buf::from_vec(i32s.iter().map(|&v| v as i8).collect())),
        DType::I16 => Data::I16(Buf::from_vec(i32s.iter().map(|&v| v as i16).collect())),
        DType::I32 => Data::I32(Buf::from_vec(i32s.iter().map(|&v| v as i32).collect())),
        DType::U8 => Data::U8(Buf::from_vec(i32s.iter().map(|&v| v as u8).collect())),
        DType::U16 => Data::U16(Buf::from_vec(i32s.iter().map(|&v| v as u16).collect())),
        DType::Bool => Data::Bool(Buf::from_vec(i32s.iter().map(|&v| u8::from(v != 0)).collect())),
        DType::I64 => Data::I64(Buf::from_vec(t.int64_data.clone())),
        DType::U32 => Data::U32(Buf::from_vec(t.uint64_data.iter().map(|&v| v as u32).collect())),
        DType::U64 => Data::U64(Buf::from_vec(t.uint64_data.clone())),
    })
}

/// Human-readable name of an ONNX data type code, including the ones kiln lacks.
pub fn dtype_code_name(code: i32) -> String {
    if let Some(d) = DType::from_onnx_code(code) {
        return d.name().into();
    }
    match code {
        0 => "undefined".into(),
        8 => "string".into(),
        14 => "complex64".into(),
        15 => "complex128".into(),
        17..=20 | 23 => format!("float8 (code {code})"),
        21 => "uint4".into(),
        22 => "int4".into(),
        c => format!("unknown (code {c})"),
    }
}
