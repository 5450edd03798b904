//! How IR functions are numbered in the shaders (`unary` and `binary` in
//! shaders/common.wgsl): the one place these numbers are written on the Rust side.

use crate::ir::ops::{Activation, BinaryOp, UnaryOp};

/// A unary function as the shaders take it: a code and two parameters.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct UnaryCode {
    pub code: u32,
    pub a: f32,
    pub b: f32,
}

impl UnaryCode {
    const fn plain(code: u32) -> UnaryCode {
        UnaryCode { code, a: 0.0, b: 0.0 }
    }

    pub const IDENTITY: UnaryCode = UnaryCode::plain(0);

    /// `a * x + b`: no IR op of its own; the mean of the variadic `Mean`.
    pub fn affine(a: f32, b: f32) -> UnaryCode {
        UnaryCode { code: 29, a, b }
    }

    /// `None` for ops with no float meaning (`Not`).
    pub fn of(op: UnaryOp) -> Option<UnaryCode> {
        use UnaryOp as U;
        let with = |code, a, b| UnaryCode { code, a, b };
        Some(match op {
            U::Relu => UnaryCode::plain(1),
            U::Clamp { min, max } => with(2, min, max),
            U::LeakyRelu { alpha } => with(3, alpha, 0.0),
            U::Sigmoid => UnaryCode::plain(4),
            U::HardSigmoid { alpha, beta } => with(5, alpha, beta),
            U::HardSwish => UnaryCode::plain(6),
            U::Silu => UnaryCode::plain(7),
            U::Tanh => UnaryCode::plain(8),
            U::Exp => UnaryCode::plain(9),
            U::Log => UnaryCode::plain(10),
            U::Sqrt => UnaryCode::plain(11),
            U::Abs => UnaryCode::plain(12),
            U::Neg => UnaryCode::plain(13),
            U::Erf => UnaryCode::plain(14),
            U::Reciprocal => UnaryCode::plain(15),
            U::Floor => UnaryCode::plain(16),
            U::Ceil => UnaryCode::plain(17),
            U::Round => UnaryCode::plain(18),
            U::Sign => UnaryCode::plain(19),
            U::Sin => UnaryCode::plain(20),
            U::Cos => UnaryCode::plain(21),
            U::Softplus => UnaryCode::plain(22),
            U::Softsign => UnaryCode::plain(23),
            U::Elu { alpha } => with(24, alpha, 0.0),
            U::Selu { alpha, gamma } => with(25, alpha, gamma),
            U::Celu { alpha } => with(26, alpha, 0.0),
            U::Gelu { tanh_approx: false } => UnaryCode::plain(27),
            U::Gelu { tanh_approx: true } => UnaryCode::plain(28),
            U::Not => return None,
        })
    }

    pub fn activation(act: Activation) -> UnaryCode {
        act.to_unary()
            .and_then(UnaryCode::of)
            .unwrap_or(UnaryCode::IDENTITY)
    }
}

/// `None` for ops the shaders do not compute (comparisons, logic, integer ops).
pub fn binary_code(op: BinaryOp) -> Option<u32> {
    use BinaryOp as B;
    Some(match op {
        B::Add => 0,
        B::Sub => 1,
        B::Mul => 2,
        B::Div => 3,
        B::Pow => 4,
        B::Max => 5,
        B::Min => 6,
        B::PRelu => 7,
        _ => return None,
    })
}
