//! The built-in model zoo: torchvision classification networks, written in Rust as
//! ONNX protobuf bytes, with seeded random weights.
//!
//! Each model has torchvision's exact topology and parameter count and the graph
//! style of PyTorch's TorchScript exporter (Conv → BatchNormalization → Relu/Clip,
//! no BN folding), so kiln can be tested and benchmarked on realistic models without
//! downloading anything. The weights are random, not trained: the logits mean
//! nothing, but they are finite, deterministic and O(1), and every BatchNorm has
//! non-trivial statistics so optimizer bugs change the output.

mod builder;
mod mobilenet;
mod regnet;
mod resnet;
pub mod rng;
mod stats;

use std::path::Path;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use builder::{Fm, Net};

/// A generated model.
#[derive(Clone, Debug)]
pub struct ZooModel {
    pub name: &'static str,
    /// The serialized `ModelProto`.
    pub onnx: Vec<u8>,
    /// Shape of the `input` tensor at batch 1 (the graph declares `batch` symbolic).
    pub input_shape: [usize; 4],
    /// Approximate cost: multiply-accumulates of all convs and Gemms at batch 1, in
    /// billions.
    pub gmacs: f64,
    /// Trainable parameters, counted as torchvision does (BN running statistics and
    /// the ReLU6 bounds are initializers but not parameters).
    pub params: usize,
}

type Architecture = fn(&mut Net, &Fm) -> Result<()>;

/// Every model, in the order [`names`] lists them.
const MODELS: &[(&str, Architecture)] = &[
    ("resnet18", resnet::resnet18),
    ("resnet34", resnet::resnet34),
    ("resnet50", resnet::resnet50),
    ("mobilenet_v2", mobilenet::mobilenet_v2),
    ("regnet_x_400mf", |n, x| regnet::regnet(n, x, &regnet::X_400MF)),
    ("regnet_x_800mf", |n, x| regnet::regnet(n, x, &regnet::X_800MF)),
    ("regnet_x_1_6gf", |n, x| regnet::regnet(n, x, &regnet::X_1_6GF)),
    ("regnet_x_3_2gf", |n, x| regnet::regnet(n, x, &regnet::X_3_2GF)),
    ("regnet_x_8gf", |n, x| regnet::regnet(n, x, &regnet::X_8GF)),
    ("regnet_x_16gf", |n, x| regnet::regnet(n, x, &regnet::X_16GF)),
    ("regnet_x_32gf", |n, x| regnet::regnet(n, x, &regnet::X_32GF)),
    ("regnet_y_400mf", |n, x| regnet::regnet(n, x, &regnet::Y_400MF)),
    ("regnet_y_800mf", |n, x| regnet::regnet(n, x, &regnet::Y_800MF)),
    ("regnet_y_1_6gf", |n, x| regnet::regnet(n, x, &regnet::Y_1_6GF)),
    ("regnet_y_3_2gf", |n, x| regnet::regnet(n, x, &regnet::Y_3_2GF)),
    ("regnet_y_8gf", |n, x| regnet::regnet(n, x, &regnet::Y_8GF)),
    ("regnet_y_16gf", |n, x| regnet::regnet(n, x, &regnet::Y_16GF)),
    ("regnet_y_32gf", |n, x| regnet::regnet(n, x, &regnet::Y_32GF)),
];

const INPUT_SHAPE: [usize; 4] = [1, 3, 224, 224];

/// Names of the models [`build`] knows.
pub fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| MODELS.iter().map(|m| m.0).collect())
}

/// Builds a model by name. The same name always gives the same bytes.
pub fn build(name: &str) -> Result<ZooModel> {
    let &(name, architecture) = MODELS.iter().find(|m| m.0 == name).ok_or_else(|| {
        Error::Usage(format!(
            "unknown zoo model '{name}'; known models: {}",
            names().join(", ")
        ))
    })?;
    let mut net = Net::new(name);
    let [_, c, h, w] = INPUT_SHAPE;
    let x = net.input(c, h, w)?;
    architecture(&mut net, &x)?;
    let built = net.finish()?;
    Ok(ZooModel {
        name,
        onnx: built.onnx,
        input_shape: INPUT_SHAPE,
        gmacs: built.macs as f64 / 1e9,
        params: built.params,
    })
}

/// Builds a model and writes its `.onnx` file to `path`.
pub fn write_to(name: &str, path: impl AsRef<Path>) -> Result<ZooModel> {
    let model = build(name)?;
    let path = path.as_ref();
    std::fs::write(path, &model.onnx).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(model)
}

/// torchvision's `_make_divisible`: round `v` to the nearest multiple of `divisor`
/// (at least `divisor`), but never more than 10% below `v`.
fn make_divisible(v: f64, divisor: usize) -> usize {
    let d = divisor as f64;
    let mut new_v = (((v + d / 2.0) as usize) / divisor * divisor).max(divisor);
    if (new_v as f64) < 0.9 * v {
        new_v += divisor;
    }
    new_v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(name, parameters, torchvision's _ops in GFLOPs)`, measured with
    /// torchvision 0.29: `sum(p.numel() for p in m.parameters())` and the weights' meta.
    const TORCHVISION: &[(&str, usize, f64)] = &[
        ("resnet18", 11_689_512, 1.814),
        ("resnet34", 21_797_672, 3.664),
        ("resnet50", 25_557_032, 4.089),
        ("mobilenet_v2", 3_504_872, 0.301),
        ("regnet_x_400mf", 5_495_976, 0.414),
        ("regnet_x_800mf", 7_259_656, 0.8),
        ("regnet_x_1_6gf", 9_190_136, 1.603),
        ("regnet_x_3_2gf", 15_296_552, 3.177),
        ("regnet_x_8gf", 39_572_648, 7.995),
        ("regnet_x_16gf", 54_278_536, 15.941),
        ("regnet_x_32gf", 107_811_560, 31.736),
        ("regnet_y_400mf", 4_344_144, 0.402),
        ("regnet_y_800mf", 6_432_512, 0.834),
        ("regnet_y_1_6gf", 11_202_430, 1.612),
        ("regnet_y_3_2gf", 19_436_338, 3.176),
        ("regnet_y_8gf", 39_381_472, 8.473),
        ("regnet_y_16gf", 83_590_140, 15.912),
        ("regnet_y_32gf", 145_046_770, 32.28),
    ];

    #[test]
    fn every_model_builds_with_torchvision_sizes() {
        assert_eq!(names(), TORCHVISION.iter().map(|t| t.0).collect::<Vec<_>>());
        // One at a time: the largest model is over half a gigabyte.
        for &(name, params, gflops) in TORCHVISION {
            let m = build(name).unwrap();
            assert_eq!(m.name, name);
            assert_eq!(m.params, params, "{name} parameter count");
            let rel = (m.gmacs - gflops).abs() / gflops;
            assert!(rel < 0.01, "{name}: {} GMACs, torchvision says {gflops}", m.gmacs);
            // Weights dominate the file: four bytes per parameter plus BN statistics.
            assert!(m.onnx.len() > params * 4, "{name}: {} bytes", m.onnx.len());
            assert_eq!(m.input_shape, [1, 3, 224, 224]);
        }
    }

    #[test]
    fn builds_are_deterministic() {
        let a = build("mobilenet_v2").unwrap();
        let b = build("mobilenet_v2").unwrap();
        assert!(a.onnx == b.onnx);
        assert!(build("resnet18").unwrap().onnx != build("resnet34").unwrap().onnx);
    }

    /// The bytes are meant to be identical on every platform (integer RNG, no libm);
    /// a changed hash means the generator changed, or determinism broke.
    #[test]
    fn bytes_are_pinned() {
        let m = build("mobilenet_v2").unwrap();
        // Skip ir_version, producer_name and producer_version, which follows the crate.
        let skip = 2 + 6 + 2 + env!("CARGO_PKG_VERSION").len();
        let hash = m.onnx[skip..].iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        assert_eq!(hash, 0xaf5f_4893_990d_df16, "{hash:#018x}");
    }

    #[test]
    fn unknown_model_lists_known_ones() {
        let err = build("vgg16").unwrap_err();
        assert!(matches!(err, Error::Usage(_)));
        assert!(err.to_string().contains("regnet_y_16gf"), "{err}");
    }

    #[test]
    fn regnet_stages_match_torchvision() {
        // `(blocks, width)` per stage, read from torchvision's `trunk_output`.
        let expected: &[(regnet::RegNetParams, [(usize, usize); 4])] = &[
            (regnet::X_400MF, [(1, 32), (2, 64), (7, 160), (12, 400)]),
            (regnet::X_800MF, [(1, 64), (3, 128), (7, 288), (5, 672)]),
            (regnet::X_1_6GF, [(2, 72), (4, 168), (10, 408), (2, 912)]),
            (regnet::X_3_2GF, [(2, 96), (6, 192), (15, 432), (2, 1008)]),
            (regnet::X_8GF, [(2, 80), (5, 240), (15, 720), (1, 1920)]),
            (regnet::X_16GF, [(2, 256), (6, 512), (13, 896), (1, 2048)]),
            (regnet::X_32GF, [(2, 336), (7, 672), (13, 1344), (1, 2520)]),
            (regnet::Y_400MF, [(1, 48), (3, 104), (6, 208), (6, 440)]),
            (regnet::Y_800MF, [(1, 64), (3, 144), (8, 320), (2, 784)]),
            (regnet::Y_1_6GF, [(2, 48), (6, 120), (17, 336), (2, 888)]),
            (regnet::Y_3_2GF, [(2, 72), (5, 216), (13, 576), (1, 1512)]),
            (regnet::Y_8GF, [(2, 224), (4, 448), (10, 896), (1, 2016)]),
            (regnet::Y_16GF, [(2, 224), (4, 448), (11, 1232), (1, 3024)]),
            (regnet::Y_32GF, [(2, 232), (5, 696), (12, 1392), (1, 3712)]),
        ];
        for (params, want) in expected {
            let got: Vec<(usize, usize)> = regnet::stages(params)
                .iter()
                .map(|s| (s.depth, s.width))
                .collect();
            assert_eq!(got, want, "{params:?}");
        }
    }

    #[test]
    fn make_divisible_matches_torchvision() {
        assert_eq!(make_divisible(32.0, 8), 32);
        assert_eq!(make_divisible(3.0, 8), 8);
        assert_eq!(make_divisible(1512.0, 24), 1512);
        assert_eq!(make_divisible(100.0, 24), 96);
        assert_eq!(make_divisible(90.0, 64), 128);
    }
}
