//! `.npy` files in and out (via `npyz`), for the dtypes kiln supports.

use std::path::Path;

use kiln::{DType, Error, Result, Tensor};
use npyz::WriterBuilder;

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub fn read(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(io_err(path))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    if npy.order() == npyz::Order::Fortran {
        return Err(Error::Usage(format!(
            "{}: Fortran-ordered arrays are not supported",
            path.display()
        )));
    }
    let type_str = match npy.dtype() {
        npyz::DType::Plain(t) => t.to_string(),
        other => {
            return Err(Error::Usage(format!(
                "{}: unsupported npy dtype {other:?}",
                path.display()
            )))
        }
    };
    let t = match &type_str[1..] {
        "f4" => Tensor::from_vec(shape, npy.into_vec::<f32>().map_err(io_err(path))?),
        "f8" => Tensor::from_vec(shape, npy.into_vec::<f64>().map_err(io_err(path))?),
        "i8" => Tensor::from_vec(shape, npy.into_vec::<i64>().map_err(io_err(path))?),
        "i4" => Tensor::from_vec(shape, npy.into_vec::<i32>().map_err(io_err(path))?),
        "u1" => Tensor::from_vec(shape, npy.into_vec::<u8>().map_err(io_err(path))?),
        "i1" => Tensor::from_vec(shape, npy.into_vec::<i8>().map_err(io_err(path))?),
        other => {
            return Err(Error::Usage(format!(
                "{}: unsupported npy dtype '{other}'",
                path.display()
            )))
        }
    }?;
    Ok(t)
}

fn write_typed<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[usize], values: &[T]) -> Result<()> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(io_err(path))?;
    w.extend(values.iter().copied()).map_err(io_err(path))?;
    w.finish().map_err(io_err(path))
}

pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    let s = t.shape();
    match t.dtype() {
        DType::F32 => write_typed(path, s, t.typed::<f32>()?),
        DType::F64 => write_typed(path, s, t.typed::<f64>()?),
        DType::I64 => write_typed(path, s, t.typed::<i64>()?),
        DType::I32 => write_typed(path, s, t.typed::<i32>()?),
        DType::U8 => write_typed(path, s, t.typed::<u8>()?),
        DType::I8 => write_typed(path, s, t.typed::<i8>()?),
        other => Err(Error::Usage(format!(
            "writing {other} tensors to .npy is not supported"
        ))),
    }
}
