//! A GPU backend against the CPU backend, kernel family by kernel family, on
//! seeded random inputs with odd sizes, in each of the backend's precisions.
//! Shared by tests/wgpu.rs and tests/cuda.rs, which say which backend (`BACKEND`,
//! `PRECISIONS`) and whether its device is there (`available`, which prints why
//! not when it is not: the cases then pass without running).

use super::{available, BACKEND, PRECISIONS};
use crate::common::{max_abs, random_tensor, rel_l2, Rng};
use kiln::onnx::write::{Attribute, Dim, GraphBuilder};
use kiln::tensor::DType;
use kiln::{Backend, Error, Precision, Session, SessionOptions, Tensor};

/// f32 GPU results differ from the CPU's only by summation order.
const F32_REL_L2: f64 = 1e-5;
/// f16 storage rounds every activation and weight to 11 bits.
const F16_REL_L2: f64 = 1e-2;

fn options(backend: Backend, precision: Precision) -> SessionOptions {
    SessionOptions {
        backend,
        precision,
        threads: Some(1),
        ..SessionOptions::default()
    }
}

/// A one-graph model: `inputs` are graph inputs, `weights` initializers.
struct Model {
    g: GraphBuilder,
    outputs: Vec<String>,
}

impl Model {
    fn new() -> Model {
        Model {
            g: GraphBuilder::new("t"),
            outputs: Vec::new(),
        }
    }

    fn input(&mut self, name: &str, shape: &[usize]) -> &mut Model {
        let dims: Vec<Dim> = shape.iter().map(|&d| Dim::Fixed(d)).collect();
        self.g.input(name, DType::F32, &dims).unwrap();
        self
    }

    fn weight(&mut self, name: &str, shape: &[usize], seed: u64) -> &mut Model {
        let t = random_tensor(shape, seed);
        self.g
            .add_initializer(name, shape, t.as_slice::<f32>().unwrap())
            .unwrap();
        self
    }

    fn ints(&mut self, name: &str, values: &[i64]) -> &mut Model {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.g
            .add_initializer_raw(name, &[values.len()], DType::I64, &raw)
            .unwrap();
        self
    }

    fn node(&mut self, op: &str, inputs: &[&str], outputs: &[&str], attrs: &[Attribute]) -> &mut Model {
        let name = format!("{op}_{}", outputs[0]);
        self.g.add_node(&name, op, inputs, outputs, attrs).unwrap();
        self
    }

    fn output(&mut self, name: &str) -> &mut Model {
        self.outputs.push(name.into());
        self
    }

    fn bytes(self) -> Vec<u8> {
        let mut g = self.g;
        for o in &self.outputs {
            g.output(o, DType::F32, &[Dim::Param(format!("{o}_shape"))])
                .unwrap();
        }
        g.finish().unwrap()
    }
}

/// Runs `bytes` on the CPU and on the GPU and compares every output.
fn check(label: &str, bytes: Vec<u8>, inputs: &[Tensor]) {
    for &precision in PRECISIONS {
        check_precision(label, bytes.clone(), inputs, precision);
    }
}

fn check_precision(label: &str, bytes: Vec<u8>, inputs: &[Tensor], precision: Precision) {
    let cpu = Session::from_bytes(bytes.clone(), options(Backend::Cpu, Precision::F32)).unwrap();
    let want = cpu.run(inputs).unwrap_or_else(|e| panic!("{label}: cpu: {e}"));
    let gpu = Session::from_bytes(bytes, options(BACKEND, precision))
        .unwrap_or_else(|e| panic!("{label}: {BACKEND} session: {e}"));
    let got = gpu
        .run(inputs)
        .unwrap_or_else(|e| panic!("{label}: {BACKEND}: {e}"));
    // Twice: the second run reuses every buffer and bind group.
    let again = gpu.run(inputs).unwrap();
    let bound = if precision == Precision::F32 {
        F32_REL_L2
    } else {
        F16_REL_L2
    };
    for (i, (w, g)) in want.iter().zip(&got).enumerate() {
        assert_eq!(w.shape(), g.shape(), "{label}: output {i} shape");
        let (w, g) = (w.as_slice::<f32>().unwrap(), g.as_slice::<f32>().unwrap());
        let (rel, abs) = (rel_l2(g, w), max_abs(g, w));
        println!("{label} [{precision:?}] output {i}: rel-L2 {rel:.2e}, max-abs {abs:.2e}");
        assert!(
            g.iter().all(|v| v.is_finite()),
            "{label} [{precision:?}]: non-finite (unwritten?) elements"
        );
        assert!(
            rel <= bound,
            "{label} [{precision:?}] output {i}: rel-L2 {rel:.2e} > {bound:.0e}"
        );
        assert_eq!(
            g,
            again[i].as_slice::<f32>().unwrap(),
            "{label}: second run differs"
        );
    }
}

#[derive(Clone, Copy)]
struct ConvCase {
    n: usize,
    c: usize,
    hw: (usize, usize),
    out: usize,
    k: (usize, usize),
    stride: usize,
    pad: usize,
    dilation: usize,
    group: usize,
}

fn conv_model(cc: ConvCase, bias: bool, residual_relu: bool) -> Vec<u8> {
    let mut m = Model::new();
    m.input("x", &[cc.n, cc.c, cc.hw.0, cc.hw.1]);
    m.weight("w", &[cc.out, cc.c / cc.group, cc.k.0, cc.k.1], 11);
    let mut inputs = vec!["x", "w"];
    if bias {
        m.weight("b", &[cc.out], 12);
        inputs.push("b");
    }
    let attrs = [
        Attribute::ints("kernel_shape", &[cc.k.0 as i64, cc.k.1 as i64]),
        Attribute::ints("strides", &[cc.stride as i64; 2]),
        Attribute::ints("pads", &[cc.pad as i64; 4]),
        Attribute::ints("dilations", &[cc.dilation as i64; 2]),
        Attribute::int("group", cc.group as i64),
    ];
    m.node("Conv", &inputs, &["y"], &attrs);
    if residual_relu {
        // The optimizer fuses these into the conv's epilogue.
        m.input("r", &conv_out_shape(cc));
        m.node("Add", &["y", "r"], &["s"], &[]);
        m.node("Relu", &["s"], &["z"], &[]);
        m.output("z");
    } else {
        m.output("y");
    }
    m.bytes()
}

fn conv_out_shape(cc: ConvCase) -> Vec<usize> {
    let o = |i: usize, k: usize| (i + 2 * cc.pad - cc.dilation * (k - 1) - 1) / cc.stride + 1;
    vec![cc.n, cc.out, o(cc.hw.0, cc.k.0), o(cc.hw.1, cc.k.1)]
}

#[test]
fn convolutions_match_cpu() {
    if !available() {
        return;
    }
    let base = ConvCase {
        n: 2,
        c: 3,
        hw: (17, 13),
        out: 5,
        k: (3, 3),
        stride: 2,
        pad: 1,
        dilation: 1,
        group: 1,
    };
    let cases = [
        ("stem-like 3x3/2", base, true, false),
        (
            "7x5 kernel",
            ConvCase {
                k: (7, 5),
                stride: 1,
                pad: 2,
                out: 67,
                ..base
            },
            false,
            false,
        ),
        (
            "pointwise 19->70",
            ConvCase {
                c: 19,
                out: 70,
                k: (1, 1),
                stride: 1,
                pad: 0,
                hw: (9, 11),
                ..base
            },
            true,
            false,
        ),
        (
            "grouped dilated",
            ConvCase {
                c: 8,
                group: 4,
                out: 12,
                dilation: 2,
                pad: 2,
                stride: 1,
                ..base
            },
            true,
            false,
        ),
        (
            "depthwise x2",
            ConvCase {
                c: 7,
                group: 7,
                out: 14,
                k: (5, 5),
                pad: 2,
                ..base
            },
            true,
            false,
        ),
        (
            "depthwise + residual + relu",
            ConvCase {
                c: 6,
                group: 6,
                out: 6,
                stride: 1,
                ..base
            },
            true,
            true,
        ),
        (
            "3x3 + residual + relu",
            ConvCase {
                c: 20,
                out: 33,
                stride: 1,
                hw: (15, 9),
                ..base
            },
            true,
            true,
        ),
    ];
    for (label, cc, bias, fused) in cases {
        let mut inputs = vec![random_tensor(&[cc.n, cc.c, cc.hw.0, cc.hw.1], 1)];
        if fused {
            inputs.push(random_tensor(&conv_out_shape(cc), 2));
        }
        check(label, conv_model(cc, bias, fused), &inputs);
    }
}

#[test]
fn gemm_and_matmul_match_cpu() {
    if !available() {
        return;
    }
    for (ta, tb, c_shape) in [
        (0, 0, vec![70]),
        (1, 0, vec![5, 1]),
        (0, 1, vec![5, 70]),
        (1, 1, vec![]),
    ] {
        let (m, k, n) = (5, 67, 70);
        let mut model = Model::new();
        let a_shape = if ta == 1 { [k, m] } else { [m, k] };
        let b_shape = if tb == 1 { [n, k] } else { [k, n] };
        model.input("a", &a_shape);
        model.weight("b", &b_shape, 3);
        let mut inputs = vec!["a", "b"];
        if !c_shape.is_empty() {
            model.weight("c", &c_shape, 4);
            inputs.push("c");
        }
        let attrs = [
            Attribute::int("transA", ta),
            Attribute::int("transB", tb),
            Attribute::float("alpha", 0.75),
            Attribute::float("beta", 1.5),
        ];
        model.node("Gemm", &inputs, &["y"], &attrs).output("y");
        let a = random_tensor(&a_shape, 5);
        check(
            &format!("gemm transA={ta} transB={tb} C={c_shape:?}"),
            model.bytes(),
            &[a],
        );
    }
    for (a_shape, b_shape) in [
        (vec![2, 3, 5, 7], vec![7, 4]),
        (vec![3, 1, 66, 5], vec![2, 5, 9]),
        (vec![9], vec![2, 9, 3]),
        (vec![4, 130], vec![130]),
    ] {
        let mut model = Model::new();
        model.input("a", &a_shape).input("b", &b_shape);
        model.node("MatMul", &["a", "b"], &["y"], &[]).output("y");
        let inputs = [random_tensor(&a_shape, 6), random_tensor(&b_shape, 7)];
        check(
            &format!("matmul {a_shape:?} x {b_shape:?}"),
            model.bytes(),
            &inputs,
        );
    }
}

#[test]
fn pooling_matches_cpu() {
    if !available() {
        return;
    }
    let shape = [2, 3, 13, 10];
    let x = random_tensor(&shape, 8);
    let windows = [
        ("MaxPool", vec![3, 3], vec![2, 2], vec![1, 1, 1, 1], 1, 0),
        ("MaxPool", vec![2, 3], vec![1, 2], vec![0, 1, 0, 1], 0, 0),
        ("AveragePool", vec![3, 3], vec![2, 2], vec![1, 1, 1, 1], 1, 0),
        ("AveragePool", vec![3, 3], vec![2, 2], vec![1, 1, 1, 1], 1, 1),
        ("AveragePool", vec![5, 4], vec![3, 2], vec![2, 0, 2, 1], 0, 1),
    ];
    for (op, k, s, p, ceil, include_pad) in windows {
        let mut m = Model::new();
        m.input("x", &shape);
        let mut attrs = vec![
            Attribute::ints("kernel_shape", &k),
            Attribute::ints("strides", &s),
            Attribute::ints("pads", &p),
            Attribute::int("ceil_mode", ceil),
        ];
        if op == "AveragePool" {
            attrs.push(Attribute::int("count_include_pad", include_pad));
        }
        m.node(op, &["x"], &["y"], &attrs).output("y");
        check(
            &format!("{op} k{k:?} s{s:?} p{p:?} ceil={ceil} pad={include_pad}"),
            m.bytes(),
            std::slice::from_ref(&x),
        );
    }
    for op in ["GlobalAveragePool", "GlobalMaxPool"] {
        let mut m = Model::new();
        m.input("x", &[3, 70, 9, 11]);
        m.node(op, &["x"], &["y"], &[]).output("y");
        check(op, m.bytes(), &[random_tensor(&[3, 70, 9, 11], 9)]);
    }
}

#[test]
fn elementwise_matches_cpu() {
    if !available() {
        return;
    }
    let shape = [2, 3, 37];
    // Positive inputs for the ops defined on them only.
    let positive_tensor = |shape: &[usize], seed| {
        let t = random_tensor(shape, seed);
        let v: Vec<f32> = t
            .as_slice::<f32>()
            .unwrap()
            .iter()
            .map(|v| v.abs() + 0.1)
            .collect();
        Tensor::from_vec(shape.to_vec(), v).unwrap()
    };
    let positive = positive_tensor(&shape, 10);
    let unary: &[(&str, &[Attribute])] = &[
        ("Relu", &[]),
        ("Sigmoid", &[]),
        ("Tanh", &[]),
        ("Exp", &[]),
        ("Abs", &[]),
        ("Neg", &[]),
        ("Erf", &[]),
        ("Floor", &[]),
        ("Ceil", &[]),
        ("Round", &[]),
        ("Sign", &[]),
        ("Sin", &[]),
        ("Cos", &[]),
        ("Softplus", &[]),
        ("Softsign", &[]),
        ("HardSwish", &[]),
        ("HardSigmoid", &[]),
        ("LeakyRelu", &[]),
        ("Elu", &[]),
        ("Selu", &[]),
        ("Celu", &[]),
    ];
    for (op, attrs) in unary {
        let mut m = Model::new();
        m.input("x", &shape);
        m.node(op, &["x"], &["y"], attrs).output("y");
        check(op, m.bytes(), &[random_tensor(&shape, 11)]);
    }
    for op in ["Log", "Sqrt", "Reciprocal"] {
        let mut m = Model::new();
        m.input("x", &shape);
        m.node(op, &["x"], &["y"], &[]).output("y");
        check(op, m.bytes(), std::slice::from_ref(&positive));
    }
    for op in ["Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu", "Sum", "Mean"] {
        let mut m = Model::new();
        m.input("a", &[2, 3, 4, 5]).input("b", &[3, 1, 5]);
        m.node(op, &["a", "b"], &["y"], &[]).output("y");
        // A divisor away from 0.
        let b = if op == "Div" {
            positive_tensor(&[3, 1, 5], 12)
        } else {
            random_tensor(&[3, 1, 5], 12)
        };
        check(
            &format!("{op} broadcast"),
            m.bytes(),
            &[random_tensor(&[2, 3, 4, 5], 13), b],
        );
    }
    // Variadic ops with three broadcast inputs.
    for op in ["Sum", "Mean", "Max", "Min"] {
        let mut m = Model::new();
        m.input("a", &[3, 1, 5])
            .input("b", &[2, 3, 4, 5])
            .input("c", &[4, 1]);
        m.node(op, &["a", "b", "c"], &["y"], &[]).output("y");
        let inputs = [
            random_tensor(&[3, 1, 5], 34),
            random_tensor(&[2, 3, 4, 5], 35),
            random_tensor(&[4, 1], 36),
        ];
        check(&format!("{op} of three"), m.bytes(), &inputs);
    }
    // Pow with a positive base, and with integral exponents on a signed base.
    let mut m = Model::new();
    m.input("a", &shape).input("b", &shape);
    m.node("Pow", &["a", "b"], &["y"], &[]).output("y");
    check("Pow", m.bytes(), &[positive.clone(), random_tensor(&shape, 14)]);
    let mut m = Model::new();
    m.input("a", &shape);
    m.g.add_initializer("three", &[1], &[3.0]).unwrap();
    m.node("Pow", &["a", "three"], &["y"], &[]).output("y");
    check("Pow integral", m.bytes(), &[random_tensor(&shape, 15)]);
    // A chain the optimizer fuses: ((x * a) + 1) -> clip -> * sigmoid(x).
    let mut m = Model::new();
    m.input("x", &shape).input("a", &shape);
    m.g.add_initializer("one", &[], &[1.0]).unwrap();
    m.node("Mul", &["x", "a"], &["p"], &[])
        .node("Add", &["p", "one"], &["q"], &[])
        .node(
            "Clip",
            &["q"],
            &["r"],
            &[Attribute::float("min", -0.5), Attribute::float("max", 2.0)],
        )
        .node("Sigmoid", &["x"], &["s"], &[])
        .node("Mul", &["r", "s"], &["y"], &[])
        .output("y");
    check(
        "fused chain",
        m.bytes(),
        &[random_tensor(&shape, 16), random_tensor(&shape, 17)],
    );
    // BatchNormalization with nothing to fold into.
    let mut m = Model::new();
    m.input("x", &[2, 5, 7, 3]);
    m.weight("s", &[5], 18)
        .weight("b", &[5], 19)
        .weight("mean", &[5], 20);
    m.g.add_initializer("var", &[5], &[0.5, 1.0, 2.0, 0.1, 3.0])
        .unwrap();
    m.node("BatchNormalization", &["x", "s", "b", "mean", "var"], &["y"], &[])
        .output("y");
    check(
        "BatchNormalization",
        m.bytes(),
        &[random_tensor(&[2, 5, 7, 3], 21)],
    );
}

#[test]
fn rows_match_cpu() {
    if !available() {
        return;
    }
    for (op, axis) in [("Softmax", 1), ("Softmax", -1), ("LogSoftmax", 0)] {
        let mut m = Model::new();
        m.input("x", &[3, 70, 5]);
        m.node(op, &["x"], &["y"], &[Attribute::int("axis", axis)])
            .output("y");
        check(
            &format!("{op} axis {axis}"),
            m.bytes(),
            &[random_tensor(&[3, 70, 5], 22)],
        );
    }
    let mut m = Model::new();
    m.input("x", &[4, 5, 130]);
    m.weight("s", &[130], 23).weight("b", &[130], 24);
    m.node(
        "LayerNormalization",
        &["x", "s", "b"],
        &["y", "mean", "inv"],
        &[Attribute::int("axis", -1)],
    );
    m.output("y").output("mean").output("inv");
    check(
        "LayerNormalization",
        m.bytes(),
        &[random_tensor(&[4, 5, 130], 25)],
    );
}

#[test]
fn data_movement_matches_cpu() {
    if !available() {
        return;
    }
    let x = random_tensor(&[2, 3, 5, 7], 26);
    let mut m = Model::new();
    m.input("x", &[2, 3, 5, 7]).input("z", &[2, 4, 5, 7]);
    m.node("Concat", &["x", "z", "x"], &["y"], &[Attribute::int("axis", 1)])
        .output("y");
    check(
        "Concat",
        m.bytes(),
        &[x.clone(), random_tensor(&[2, 4, 5, 7], 27)],
    );

    let mut m = Model::new();
    m.input("x", &[2, 3, 5, 7]).ints("split", &[2, 5]);
    m.node(
        "Split",
        &["x", "split"],
        &["a", "b"],
        &[Attribute::int("axis", 3)],
    )
    .output("a")
    .output("b");
    check("Split", m.bytes(), std::slice::from_ref(&x));

    let mut m = Model::new();
    m.input("x", &[2, 3, 5, 7]);
    m.node(
        "Transpose",
        &["x"],
        &["y"],
        &[Attribute::ints("perm", &[2, 0, 3, 1])],
    )
    .output("y");
    check("Transpose", m.bytes(), std::slice::from_ref(&x));

    let mut m = Model::new();
    m.input("x", &[2, 3, 5, 7])
        .ints("starts", &[-1, 1, 6])
        .ints("ends", &[-100, 5, 0])
        .ints("axes", &[1, 2, 3])
        .ints("steps", &[-1, 2, -2]);
    m.node("Slice", &["x", "starts", "ends", "axes", "steps"], &["y"], &[])
        .output("y");
    check("Slice (negative steps)", m.bytes(), std::slice::from_ref(&x));

    let mut m = Model::new();
    m.input("x", &[2, 3, 5, 7])
        .ints("pads", &[0, 1, -1, 2, 0, 0, 2, -3]);
    m.g.add_initializer("v", &[], &[0.25]).unwrap();
    m.node("Pad", &["x", "pads", "v"], &["y"], &[]).output("y");
    check("Pad (constant, negative)", m.bytes(), std::slice::from_ref(&x));

    let mut m = Model::new();
    m.input("x", &[3, 1, 7]).ints("shape", &[2, 1, 5, 1]);
    m.node("Expand", &["x", "shape"], &["y"], &[]).output("y");
    check("Expand", m.bytes(), &[random_tensor(&[3, 1, 7], 28)]);
}

#[test]
fn squeeze_excitation_matches_cpu() {
    if !available() {
        return;
    }
    // GAP -> 1x1 conv -> ReLU -> 1x1 conv -> HardSigmoid -> Mul: fused into one op.
    let (c, r) = (40, 10);
    let mut m = Model::new();
    m.input("x", &[2, c, 9, 7]);
    m.weight("w1", &[r, c, 1, 1], 29).weight("b1", &[r], 30);
    m.weight("w2", &[c, r, 1, 1], 31).weight("b2", &[c], 32);
    m.node("GlobalAveragePool", &["x"], &["g"], &[])
        .node("Conv", &["g", "w1", "b1"], &["h"], &[])
        .node("Relu", &["h"], &["hr"], &[])
        .node("Conv", &["hr", "w2", "b2"], &["s"], &[])
        .node(
            "HardSigmoid",
            &["s"],
            &["gate"],
            &[Attribute::float("alpha", 1.0 / 6.0)],
        )
        .node("Mul", &["x", "gate"], &["y"], &[])
        .output("y");
    let bytes = m.bytes();
    let session = Session::from_bytes(bytes.clone(), SessionOptions::default()).unwrap();
    assert!(
        session
            .graph()
            .nodes
            .iter()
            .any(|n| n.op.name() == "SqueezeExcite"),
        "the optimizer no longer fuses this pattern; the test would not cover the SE kernel"
    );
    check("squeeze-excitation", bytes, &[random_tensor(&[2, c, 9, 7], 33)]);
}

#[test]
fn unsupported_ops_are_listed_at_load() {
    if !available() {
        return;
    }
    let mut m = Model::new();
    m.input("x", &[2, 3]);
    m.node("TopK", &["x", "k"], &["v", "i"], &[]);
    m.ints("k", &[1]);
    m.node("CumSum", &["x", "k"], &["y"], &[]).output("y");
    let err = Session::from_bytes(m.bytes(), options(BACKEND, Precision::F32))
        .err()
        .expect("must fail");
    let Error::Unsupported(items) = &err else {
        panic!("unexpected error {err}")
    };
    let ops: Vec<&str> = items.iter().map(|u| u.op.as_str()).collect();
    assert!(ops.contains(&"CumSum"), "{err}");
    println!("{err}");
}

#[test]
fn non_float_inputs_are_refused_with_the_node_named() {
    if !available() {
        return;
    }
    let mut g = GraphBuilder::new("ints");
    // Large enough not to be a "shape input", whose values the planner folds.
    let n = kiln::plan::SHAPE_INPUT_MAX_ELEMENTS + 1;
    g.input("a", DType::I64, &[Dim::Fixed(n)]).unwrap();
    g.input("b", DType::I64, &[Dim::Fixed(n)]).unwrap();
    g.add_node("int_add", "Add", &["a", "b"], &["y"], &[]).unwrap();
    g.output("y", DType::I64, &[Dim::Fixed(n)]).unwrap();
    let session = Session::from_bytes(g.finish().unwrap(), options(BACKEND, Precision::F32)).unwrap();
    let t = Tensor::from_vec(vec![n], (0..n as i64).collect()).unwrap();
    let err = session.run(&[t.clone(), t]).expect_err("must fail");
    assert!(
        matches!(&err, Error::Unsupported(u) if u[0].node == "int_add"),
        "{err}"
    );
}

#[test]
fn seeded_random_shapes_match_cpu() {
    if !available() {
        return;
    }
    // Convolutions of random odd geometry, the kernel family with the most index
    // arithmetic.
    let mut rng = Rng::new(2026);
    for i in 0..6 {
        let pick = |rng: &mut Rng, lo: usize, hi: usize| lo + (rng.next_u64() as usize) % (hi - lo + 1);
        let group = [1, 1, 2, 3][pick(&mut rng, 0, 3)];
        let k = pick(&mut rng, 1, 4);
        let cc = ConvCase {
            n: pick(&mut rng, 1, 2),
            c: group * pick(&mut rng, 1, 9),
            hw: (pick(&mut rng, k + 1, 19), pick(&mut rng, k + 1, 19)),
            out: group * pick(&mut rng, 1, 40),
            k: (k, pick(&mut rng, 1, 4).min(k + 1)),
            stride: pick(&mut rng, 1, 3),
            pad: pick(&mut rng, 0, 1),
            dilation: pick(&mut rng, 1, 2),
            group,
        };
        if cc.hw.1 + 2 * cc.pad < cc.dilation * (cc.k.1 - 1) + 1
            || cc.hw.0 + 2 * cc.pad < cc.dilation * (cc.k.0 - 1) + 1
        {
            continue;
        }
        let x = random_tensor(&[cc.n, cc.c, cc.hw.0, cc.hw.1], 40 + i);
        check_precision(
            &format!("random conv #{i}"),
            conv_model(cc, i % 2 == 0, false),
            &[x],
            Precision::F32,
        );
    }
}
