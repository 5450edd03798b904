//! Typed access to a node's attributes, with ONNX defaults and clear errors.

use crate::error::{Error, Result};
use crate::onnx::proto::{AttrType, AttributeProto, NodeProto};

pub struct Attrs<'n, 'a> {
    node: &'n NodeProto<'a>,
}

impl<'n, 'a> Attrs<'n, 'a> {
    pub fn new(node: &'n NodeProto<'a>) -> Self {
        Attrs { node }
    }

    pub fn get(&self, name: &str) -> Option<&'n AttributeProto<'a>> {
        self.node.attributes.iter().find(|a| a.name == name)
    }

    fn wrong(&self, name: &str, expected: &str, a: &AttributeProto) -> Error {
        Error::invalid(format!(
            "node '{}' ({}): attribute '{name}' should be {expected}, found {:?}",
            self.node.name, self.node.op_type, a.kind
        ))
    }

    /// Attributes written by old exporters may omit `type`; accept those when the
    /// payload is unambiguous.
    fn is(a: &AttributeProto, t: AttrType) -> bool {
        a.kind == t || a.kind == AttrType::Undefined
    }

    pub fn int_opt(&self, name: &str) -> Result<Option<i64>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if Self::is(a, AttrType::Int) => Ok(Some(a.i)),
            Some(a) => Err(self.wrong(name, "an int", a)),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.int_opt(name)?.unwrap_or(default))
    }

    pub fn bool(&self, name: &str, default: bool) -> Result<bool> {
        Ok(self.int(name, default as i64)? != 0)
    }

    pub fn float(&self, name: &str, default: f32) -> Result<f32> {
        match self.get(name) {
            None => Ok(default),
            Some(a) if Self::is(a, AttrType::Float) => Ok(a.f),
            Some(a) => Err(self.wrong(name, "a float", a)),
        }
    }

    pub fn ints_opt(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if Self::is(a, AttrType::Ints) => Ok(Some(a.ints.clone())),
            Some(a) => Err(self.wrong(name, "a list of ints", a)),
        }
    }

    pub fn floats_opt(&self, name: &str) -> Result<Option<Vec<f32>>> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if Self::is(a, AttrType::Floats) => Ok(Some(a.floats.clone())),
            Some(a) => Err(self.wrong(name, "a list of floats", a)),
        }
    }

    /// Non-negative ints (sizes, strides), as `usize`.
    pub fn usizes_opt(&self, name: &str) -> Result<Option<Vec<usize>>> {
        let Some(v) = self.ints_opt(name)? else {
            return Ok(None);
        };
        v.iter()
            .map(|&x| {
                usize::try_from(x).map_err(|_| {
                    Error::invalid(format!(
                        "node '{}' ({}): attribute '{name}' has negative value {x}",
                        self.node.name, self.node.op_type
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    pub fn string(&self, name: &str, default: &str) -> Result<String> {
        match self.get(name) {
            None => Ok(default.to_string()),
            Some(a) if Self::is(a, AttrType::String) => Ok(String::from_utf8_lossy(a.s).into_owned()),
            Some(a) => Err(self.wrong(name, "a string", a)),
        }
    }
}
