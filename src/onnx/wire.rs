//! Protobuf wire format, read side: just what the ONNX messages need.
//!
//! Length-delimited fields are returned as sub-slices of the input, so tensor bytes
//! stay where they are (in the memory map) instead of being copied into `Vec`s.

use crate::error::{Error, Result};

/// Wire types of the protobuf encoding.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum WireType {
    Varint,
    Fixed64,
    Len,
    Fixed32,
}

/// A cursor over one encoded message.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Next field key, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, WireType)>> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| Error::malformed("field number out of range"))?;
        let wire = match key & 7 {
            0 => WireType::Varint,
            1 => WireType::Fixed64,
            2 => WireType::Len,
            5 => WireType::Fixed32,
            t => {
                return Err(Error::malformed(format!(
                    "unsupported wire type {t} (field {field})"
                )))
            }
        };
        if field == 0 {
            return Err(Error::malformed("field number 0"));
        }
        Ok(Some((field, wire)))
    }

    pub fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| Error::malformed("truncated varint"))?;
            self.pos += 1;
            if shift == 63 && byte > 1 {
                return Err(Error::malformed("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Error::malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| Error::malformed("field runs past the end of the message"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let len = usize::try_from(self.varint()?).map_err(|_| Error::malformed("length out of range"))?;
        self.take(len)
    }

    pub fn string(&mut self) -> Result<&'a str> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Error::malformed("string field is not UTF-8"))
    }

    pub fn fixed32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn fixed64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    pub fn int64(&mut self) -> Result<i64> {
        Ok(self.varint()? as i64)
    }

    pub fn skip(&mut self, wire: WireType) -> Result<()> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::Fixed64 => self.take(8).map(drop),
            WireType::Len => self.bytes().map(drop),
            WireType::Fixed32 => self.take(4).map(drop),
        }
    }

    /// Appends a repeated varint field that may be packed or not.
    pub fn repeated_varint(&mut self, wire: WireType, out: &mut Vec<i64>) -> Result<()> {
        match wire {
            WireType::Len => {
                let mut packed = Reader::new(self.bytes()?);
                while packed.pos < packed.buf.len() {
                    out.push(packed.varint()? as i64);
                }
                Ok(())
            }
            WireType::Varint => {
                out.push(self.int64()?);
                Ok(())
            }
            _ => Err(Error::malformed(
                "repeated integer field with a non-integer wire type",
            )),
        }
    }

    /// Appends a repeated `float` field that may be packed or not.
    pub fn repeated_f32(&mut self, wire: WireType, out: &mut Vec<f32>) -> Result<()> {
        match wire {
            WireType::Len => {
                let b = self.bytes()?;
                if b.len() % 4 != 0 {
                    return Err(Error::malformed("packed float field length not a multiple of 4"));
                }
                out.extend(
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                );
                Ok(())
            }
            WireType::Fixed32 => {
                out.push(f32::from_bits(self.fixed32()?));
                Ok(())
            }
            _ => Err(Error::malformed("repeated float field with a wrong wire type")),
        }
    }

    /// Appends a repeated `double`/`uint64` (fixed 8 bytes or varint) field as raw u64 bits.
    pub fn repeated_u64(&mut self, wire: WireType, fixed: bool, out: &mut Vec<u64>) -> Result<()> {
        match (wire, fixed) {
            (WireType::Len, true) => {
                let b = self.bytes()?;
                if b.len() % 8 != 0 {
                    return Err(Error::malformed("packed double field length not a multiple of 8"));
                }
                out.extend(b.chunks_exact(8).map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    u64::from_le_bytes(a)
                }));
                Ok(())
            }
            (WireType::Len, false) => {
                let mut packed = Reader::new(self.bytes()?);
                while packed.pos < packed.buf.len() {
                    out.push(packed.varint()?);
                }
                Ok(())
            }
            (WireType::Fixed64, true) => {
                out.push(self.fixed64()?);
                Ok(())
            }
            (WireType::Varint, false) => {
                out.push(self.varint()?);
                Ok(())
            }
            _ => Err(Error::malformed("repeated 64-bit field with a wrong wire type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_truncation() {
        let mut r = Reader::new(&[0x96, 0x01]);
        assert_eq!(r.varint().unwrap(), 150);
        let mut r = Reader::new(&[0x96]);
        assert!(matches!(r.varint(), Err(Error::Malformed(_))));
        // -1 as int64 is ten bytes.
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.int64().unwrap(), -1);
        let mut r = Reader::new(&[0xff; 11]);
        assert!(r.varint().is_err());
    }

    #[test]
    fn length_past_end_is_an_error() {
        let mut r = Reader::new(&[0x0a, 0x05, 1, 2]);
        assert_eq!(r.next_field().unwrap(), Some((1, WireType::Len)));
        assert!(r.bytes().is_err());
    }
}
