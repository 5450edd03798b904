//! Tensors: element types, owned-or-memory-mapped storage, and borrowed views.
//!
//! A [`Tensor`] is what a caller passes in and gets back, and what the IR uses for
//! constants. Initializers loaded from a model keep pointing into the model's memory
//! map ([`Buf::mapped`]); they are copied at most once (only when the bytes are not
//! aligned for their element type). Kernels never see `Tensor`s: they get [`View`]s
//! and [`ViewMut`]s, typed slices plus a shape, so the runtime can hand them arena
//! buffers and constants alike.

mod compare;

use std::sync::Arc;

use half::{bf16, f16};

use crate::error::{Error, Result};

pub use compare::{max_abs, rel_l2};

/// Bytes a tensor may borrow: a memory-mapped model file or an in-memory model.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

macro_rules! for_each_dtype {
    ($m:ident) => {
        $m! {
            (F32, f32, 1, "float32"),
            (F64, f64, 11, "float64"),
            (F16, f16, 10, "float16"),
            (BF16, bf16, 16, "bfloat16"),
            (I8, i8, 3, "int8"),
            (I16, i16, 5, "int16"),
            (I32, i32, 6, "int32"),
            (I64, i64, 7, "int64"),
            (U8, u8, 2, "uint8"),
            (U16, u16, 4, "uint16"),
            (U32, u32, 12, "uint32"),
            (U64, u64, 13, "uint64"),
            (Bool, u8, 9, "bool")
        }
    };
}
#[allow(unused_imports)]
pub(crate) use for_each_dtype;

macro_rules! define_types {
    ($(($v:ident, $t:ty, $code:expr, $name:expr)),*) => {
        /// Element type of a tensor. `Bool` is stored as one byte per element (0 or 1).
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        pub enum DType { $($v),* }

        impl DType {
            /// The `TensorProto.DataType` code.
            pub fn onnx_code(self) -> i32 { match self { $(DType::$v => $code),* } }

            pub fn from_onnx_code(code: i32) -> Option<DType> {
                match code { $($code => Some(DType::$v),)* _ => None }
            }

            /// Size of one element in bytes.
            pub fn size(self) -> usize { match self { $(DType::$v => std::mem::size_of::<$t>()),* } }

            /// numpy-style name, as used by `.npy` files and error messages.
            pub fn name(self) -> &'static str { match self { $(DType::$v => $name),* } }

            /// Whether this is a floating-point type.
            pub fn is_float(self) -> bool {
                matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
            }
        }

        /// Owned or mapped typed storage of a tensor.
        #[derive(Clone, Debug)]
        pub enum Data { $($v(Buf<$t>)),* }

        /// A borrowed typed slice.
        #[derive(Copy, Clone, Debug)]
        pub enum Slice<'a> { $($v(&'a [$t])),* }

        /// A mutably borrowed typed slice.
        #[derive(Debug)]
        pub enum SliceMut<'a> { $($v(&'a mut [$t])),* }

        /// A growable typed buffer, as used by the runtime's arena.
        #[derive(Clone, Debug)]
        pub enum DataVec { $($v(Vec<$t>)),* }

        impl Data {
            pub fn dtype(&self) -> DType { match self { $(Data::$v(_) => DType::$v),* } }
            pub fn len(&self) -> usize { match self { $(Data::$v(b) => b.as_slice().len()),* } }
            pub fn is_empty(&self) -> bool { self.len() == 0 }
            pub fn slice(&self) -> Slice<'_> { match self { $(Data::$v(b) => Slice::$v(b.as_slice())),* } }
            pub fn slice_mut(&mut self) -> SliceMut<'_> {
                match self { $(Data::$v(b) => SliceMut::$v(b.as_mut_slice())),* }
            }
            /// Zero-filled storage of `len` elements.
            pub fn zeros(dtype: DType, len: usize) -> Data {
                match dtype { $(DType::$v => Data::$v(Buf::from_vec(vec![<$t>::default(); len]))),* }
            }
            /// Storage that borrows `bytes[start..start + len * size]`; copies once if misaligned.
            pub(crate) fn from_bytes(dtype: DType, bytes: SharedBytes, start: usize, len: usize) -> Data {
                match dtype { $(DType::$v => Data::$v(Buf::mapped(bytes, start, len))),* }
            }
        }

        impl<'a> Slice<'a> {
            pub fn dtype(&self) -> DType { match self { $(Slice::$v(_) => DType::$v),* } }
            pub fn len(&self) -> usize { match self { $(Slice::$v(s) => s.len()),* } }
            pub fn is_empty(&self) -> bool { self.len() == 0 }
            pub fn as_bytes(&self) -> &'a [u8] { match *self { $(Slice::$v(s) => bytemuck::cast_slice(s)),* } }
            pub fn to_data(&self) -> Data { match self { $(Slice::$v(s) => Data::$v(Buf::from_vec(s.to_vec()))),* } }
        }

        impl<'a> SliceMut<'a> {
            pub fn dtype(&self) -> DType { match self { $(SliceMut::$v(_) => DType::$v),* } }
            pub fn as_bytes_mut(&mut self) -> &mut [u8] {
                match self { $(SliceMut::$v(s) => bytemuck::cast_slice_mut(s)),* }
            }
        }

        impl DataVec {
            pub fn new(dtype: DType) -> DataVec { match dtype { $(DType::$v => DataVec::$v(Vec::new())),* } }
            pub fn dtype(&self) -> DType { match self { $(DataVec::$v(_) => DType::$v),* } }
            /// Elements usable from the aligned start.
            pub fn capacity(&self) -> usize {
                match self { $(DataVec::$v(v) => v.len().saturating_sub(aligned_start(v))),* }
            }
            /// Makes sure at least `len` elements exist from a cache-line-aligned
            /// start (allocates only when growing).
            pub fn reserve_len(&mut self, len: usize) {
                match self {
                    $(DataVec::$v(v) => {
                        let want = len + CACHE_LINE / std::mem::size_of::<$t>();
                        if v.len() < want { v.resize(want, <$t>::default()) }
                    }),*
                }
            }
            /// The first `len` elements from the aligned start.
            pub fn slice(&self, len: usize) -> Slice<'_> {
                match self { $(DataVec::$v(v) => Slice::$v(&v[aligned_start(v)..][..len])),* }
            }
            pub fn slice_mut(&mut self, len: usize) -> SliceMut<'_> {
                match self { $(DataVec::$v(v) => { let s = aligned_start(v); SliceMut::$v(&mut v[s..][..len]) }),* }
            }
        }
    };
}
for_each_dtype!(define_types);

/// Bytes arena buffers are aligned to: whole cache lines, so a kernel's 64-byte
/// vector loads and stores of a row that starts a buffer never straddle two
/// lines (the allocator's 16-byte alignment made every AVX-512 access a split).
const CACHE_LINE: usize = 64;

/// The index of `v`'s first cache-line-aligned element (its elements' sizes
/// divide a cache line; an empty vector starts at 0).
fn aligned_start<T>(v: &[T]) -> usize {
    match v.as_ptr().align_offset(CACHE_LINE) {
        off if off <= v.len() => off,
        _ => 0,
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Typed storage that is either owned or borrowed from shared (memory-mapped) bytes.
#[derive(Clone)]
pub struct Buf<T> {
    inner: BufInner<T>,
}

#[derive(Clone)]
enum BufInner<T> {
    Owned(Arc<Vec<T>>),
    Mapped {
        bytes: SharedBytes,
        start: usize,
        len: usize,
    },
}

impl<T: bytemuck::Pod> std::fmt::Debug for Buf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.inner {
            BufInner::Owned(_) => "owned",
            BufInner::Mapped { .. } => "mapped",
        };
        write!(
            f,
            "Buf<{}>({kind}, {} elements)",
            std::any::type_name::<T>(),
            self.as_slice().len()
        )
    }
}

impl<T: bytemuck::Pod> Buf<T> {
    pub fn from_vec(v: Vec<T>) -> Self {
        Buf {
            inner: BufInner::Owned(Arc::new(v)),
        }
    }

    /// Borrows `len` elements at byte offset `start`. The caller has checked the range
    /// lies inside `bytes`. Misaligned data (protobuf does not align `raw_data`) is
    /// copied here, once.
    pub(crate) fn mapped(bytes: SharedBytes, start: usize, len: usize) -> Self {
        let size = std::mem::size_of::<T>();
        let raw = &(*bytes).as_ref()[start..start + len * size];
        if bytemuck::try_cast_slice::<u8, T>(raw).is_ok() {
            Buf {
                inner: BufInner::Mapped { bytes, start, len },
            }
        } else {
            Buf::from_vec(bytemuck::pod_collect_to_vec(raw))
        }
    }

    pub fn as_slice(&self) -> &[T] {
        match &self.inner {
            BufInner::Owned(v) => v,
            BufInner::Mapped { bytes, start, len } => {
                let size = std::mem::size_of::<T>();
                // Alignment was checked in `mapped`, so this cannot fail.
                bytemuck::cast_slice(&(**bytes).as_ref()[*start..*start + len * size])
            }
        }
    }

    /// Mutable access; copies mapped or shared data first (copy-on-write).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        if let BufInner::Mapped { .. } = self.inner {
            *self = Buf::from_vec(self.as_slice().to_vec());
        }
        match &mut self.inner {
            BufInner::Owned(v) => Arc::make_mut(v).as_mut_slice(),
            BufInner::Mapped { .. } => unreachable!("converted to owned above"),
        }
    }

    /// True when the data still lives in the model's memory map.
    pub fn is_mapped(&self) -> bool {
        matches!(self.inner, BufInner::Mapped { .. })
    }
}

/// Elements that can be put into or read out of a [`Tensor`] with a static type.
pub trait Element: bytemuck::Pod {
    const DTYPE: DType;
    fn wrap(buf: Buf<Self>) -> Data;
    fn slice_of<'a>(s: &Slice<'a>) -> Option<&'a [Self]>;
    fn slice_of_mut<'a, 'b>(s: &'b mut SliceMut<'a>) -> Option<&'b mut [Self]>;
}

macro_rules! impl_element {
    ($v:ident, $t:ty) => {
        impl Element for $t {
            const DTYPE: DType = DType::$v;
            fn wrap(buf: Buf<Self>) -> Data {
                Data::$v(buf)
            }
            fn slice_of<'a>(s: &Slice<'a>) -> Option<&'a [Self]> {
                match *s {
                    Slice::$v(x) => Some(x),
                    _ => None,
                }
            }
            fn slice_of_mut<'a, 'b>(s: &'b mut SliceMut<'a>) -> Option<&'b mut [Self]> {
                match s {
                    SliceMut::$v(x) => Some(x),
                    _ => None,
                }
            }
        }
    };
}
impl_element!(F32, f32);
impl_element!(F64, f64);
impl_element!(F16, f16);
impl_element!(BF16, bf16);
impl_element!(I8, i8);
impl_element!(I16, i16);
impl_element!(I32, i32);
impl_element!(I64, i64);
impl_element!(U8, u8);
impl_element!(U16, u16);
impl_element!(U32, u32);
impl_element!(U64, u64);

/// An n-dimensional array with a shape and typed storage.
#[derive(Clone, Debug)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Data,
}

/// Product of the dimensions, or an error if it overflows `usize`.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    /// Builds a tensor; fails if the data length does not match the shape.
    pub fn new(shape: Vec<usize>, data: Data) -> Result<Tensor> {
        let numel =
            checked_numel(&shape).ok_or_else(|| Error::Limit(format!("shape {shape:?} overflows")))?;
        if numel != data.len() {
            return Err(Error::Usage(format!(
                "tensor of shape {shape:?} needs {numel} elements, got {}",
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor from a `Vec` of elements (`f32`, `i64`, ...).
    pub fn from_vec<T: Element>(shape: Vec<usize>, values: Vec<T>) -> Result<Tensor> {
        Tensor::new(shape, T::wrap(Buf::from_vec(values)))
    }

    /// A float32 tensor of standard-normal values from `seed` (reproducible).
    pub fn random_normal(shape: Vec<usize>, seed: u64) -> Result<Tensor> {
        let numel =
            checked_numel(&shape).ok_or_else(|| Error::Limit(format!("shape {shape:?} overflows")))?;
        Tensor::from_vec(shape, crate::zoo::rng::Rng::new(seed).normals(numel, 0.0, 1.0))
    }

    /// A boolean tensor.
    pub fn from_bools(shape: Vec<usize>, values: &[bool]) -> Result<Tensor> {
        let bytes = values.iter().map(|&b| b as u8).collect();
        Tensor::new(shape, Data::Bool(Buf::from_vec(bytes)))
    }

    pub fn scalar<T: Element>(value: T) -> Tensor {
        Tensor {
            shape: vec![],
            data: T::wrap(Buf::from_vec(vec![value])),
        }
    }

    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Result<Tensor> {
        let numel =
            checked_numel(&shape).ok_or_else(|| Error::Limit(format!("shape {shape:?} overflows")))?;
        Ok(Tensor {
            shape,
            data: Data::zeros(dtype, numel),
        })
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    pub fn into_data(self) -> Data {
        self.data
    }

    /// The elements as a typed slice, or `None` if `T` is not this tensor's dtype.
    pub fn as_slice<T: Element>(&self) -> Option<&[T]> {
        T::slice_of(&self.data.slice())
    }

    /// Typed access that reports a dtype mismatch as an error.
    pub fn typed<T: Element>(&self) -> Result<&[T]> {
        self.as_slice().ok_or_else(|| Error::InputMismatch {
            name: "tensor".into(),
            expected: T::DTYPE.name().into(),
            got: self.dtype().name().into(),
        })
    }

    /// Same data, new shape (element count must match).
    pub fn reshaped(self, shape: Vec<usize>) -> Result<Tensor> {
        Tensor::new(shape, self.data)
    }

    pub fn view(&self) -> View<'_> {
        View {
            shape: &self.shape,
            data: self.data.slice(),
        }
    }

    /// The values as `i64`, for shape-like integer tensors (any integer dtype).
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        self.view().to_i64_vec()
    }

    /// The values converted to `f32` (any numeric dtype).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        self.view().to_f32_vec()
    }
}

impl PartialEq for Tensor {
    /// Bitwise equality of shape, dtype and elements.
    fn eq(&self, other: &Tensor) -> bool {
        self.shape == other.shape
            && self.dtype() == other.dtype()
            && self.data.slice().as_bytes() == other.data.slice().as_bytes()
    }
}

/// A borrowed tensor: what kernels read.
#[derive(Copy, Clone, Debug)]
pub struct View<'a> {
    pub shape: &'a [usize],
    pub data: Slice<'a>,
}

/// A mutably borrowed tensor: what kernels write.
#[derive(Debug)]
pub struct ViewMut<'a> {
    pub shape: &'a [usize],
    pub data: SliceMut<'a>,
}

impl<'a> View<'a> {
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn typed<T: Element>(&self) -> Result<&'a [T]> {
        T::slice_of(&self.data).ok_or_else(|| Error::InputMismatch {
            name: "kernel input".into(),
            expected: T::DTYPE.name().into(),
            got: self.dtype().name().into(),
        })
    }

    pub fn to_tensor(&self) -> Tensor {
        Tensor {
            shape: self.shape.to_vec(),
            data: self.data.to_data(),
        }
    }

    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self.data {
            Slice::I64(s) => s.to_vec(),
            Slice::I32(s) => s.iter().map(|&x| x as i64).collect(),
            Slice::I16(s) => s.iter().map(|&x| x as i64).collect(),
            Slice::I8(s) => s.iter().map(|&x| x as i64).collect(),
            Slice::U8(s) | Slice::Bool(s) => s.iter().map(|&x| x as i64).collect(),
            Slice::U16(s) => s.iter().map(|&x| x as i64).collect(),
            Slice::U32(s) => s.iter().map(|&x| x as i64).collect(),
            Slice::U64(s) => s.iter().map(|&x| x as i64).collect(),
            _ => return None,
        })
    }

    pub fn to_f32_vec(&self) -> Vec<f32> {
        match self.data {
            Slice::F32(s) => s.to_vec(),
            Slice::F64(s) => s.iter().map(|&x| x as f32).collect(),
            Slice::F16(s) => s.iter().map(|x| x.to_f32()).collect(),
            Slice::BF16(s) => s.iter().map(|x| x.to_f32()).collect(),
            _ => self
                .to_i64_vec()
                .unwrap_or_default()
                .into_iter()
                .map(|x| x as f32)
                .collect(),
        }
    }
}

impl<'a> ViewMut<'a> {
    pub fn typed<T: Element>(&mut self) -> Result<&mut [T]> {
        let dtype = self.data.dtype();
        T::slice_of_mut(&mut self.data).ok_or_else(|| Error::InputMismatch {
            name: "kernel output".into(),
            expected: T::DTYPE.name().into(),
            got: dtype.name().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arena_vectors_start_on_a_cache_line() {
        for (dtype, len) in [
            (DType::F32, 1000),
            (DType::F32, 1),
            (DType::I64, 77),
            (DType::U8, 3),
        ] {
            let mut v = DataVec::new(dtype);
            v.reserve_len(len);
            assert!(v.capacity() >= len, "{dtype} {len}");
            let start = match v.slice_mut(len) {
                SliceMut::F32(s) => {
                    s.fill(1.0);
                    s.as_ptr() as usize
                }
                SliceMut::I64(s) => s.as_ptr() as usize,
                SliceMut::U8(s) => s.as_ptr() as usize,
                _ => unreachable!(),
            };
            assert_eq!(start % CACHE_LINE, 0, "{dtype} {len}");
            assert_eq!(v.slice(len).len(), len);
        }
    }

    #[test]
    fn misaligned_mapped_bytes_are_copied_once_and_read_back() {
        let mut raw = vec![0u8; 1];
        for v in [1.5f32, -2.0, 3.25] {
            raw.extend_from_slice(&v.to_le_bytes());
        }
        let bytes: SharedBytes = Arc::new(raw);
        let data = Data::from_bytes(DType::F32, bytes, 1, 3);
        assert_eq!(data.slice().as_bytes().len(), 12);
        match &data {
            Data::F32(b) => assert_eq!(b.as_slice(), &[1.5, -2.0, 3.25]),
            _ => panic!("wrong dtype"),
        }
    }

    #[test]
    fn shape_mismatch_is_an_error() {
        assert!(Tensor::from_vec(vec![2, 2], vec![1.0f32; 3]).is_err());
    }
}
