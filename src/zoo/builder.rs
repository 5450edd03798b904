//! A CNN builder on top of the ONNX writer, in the style of PyTorch's exporter.
//!
//! Each helper emits the nodes the TorchScript exporter writes for the matching
//! torchvision module (Conv without bias → BatchNormalization → Relu/Clip, `Add` for
//! residuals, GlobalAveragePool → Flatten → Gemm for the head) and names weights
//! like the module's `state_dict` keys, so a zoo graph can be compared with
//! torchvision name by name.
//!
//! Weights are random but chosen so activations stay near unit scale at any depth:
//! the builder tracks estimated statistics of each feature map ([`Stats`]) and draws
//! the next conv's weights with `std = 1 / sqrt(fan_in * mean_square)` (Kaiming-normal
//! with fan-in, corrected for what actually flows in), so every conv output has a
//! mean square near 1. BatchNorm then gets deliberately non-trivial parameters
//! around that unit scale, so a wrong BN fold changes the logits instead of hiding
//! behind identity statistics.

use std::collections::HashMap;

use super::rng::Rng;
use super::stats::Stats;
use crate::error::{Error, Result};
use crate::onnx::write::{Attribute, Dim, GraphBuilder};
use crate::tensor::DType;

/// Name of the graph input and output of every zoo model.
pub(crate) const INPUT: &str = "input";
pub(crate) const OUTPUT: &str = "logits";

/// A feature map of the graph being built: its value name, its shape at batch 1,
/// and estimated statistics (used to scale the next layer's weights).
#[derive(Clone, Debug)]
pub(crate) struct Fm {
    pub name: String,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    stats: Stats,
}

/// Activation after a conv + BN pair.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Act {
    Linear,
    Relu,
    /// `nn.ReLU6`, exported as `Clip(x, 0, 6)`.
    Relu6,
}

/// A square convolution with `(k - 1) / 2` padding, as torchvision's convs all are.
#[derive(Copy, Clone, Debug)]
pub(crate) struct ConvSpec {
    cout: usize,
    k: usize,
    stride: usize,
    groups: usize,
}

pub(crate) fn conv(cout: usize, k: usize, stride: usize) -> ConvSpec {
    ConvSpec {
        cout,
        k,
        stride,
        groups: 1,
    }
}

impl ConvSpec {
    pub(crate) fn groups(self, groups: usize) -> ConvSpec {
        ConvSpec { groups, ..self }
    }
}

/// What a finished build produced.
pub(crate) struct Built {
    pub onnx: Vec<u8>,
    /// Trainable parameters as torchvision counts them (no BN running statistics).
    pub params: usize,
    /// Multiply-accumulates of convs and Gemms at batch 1.
    pub macs: u64,
}

pub(crate) struct Net {
    graph: GraphBuilder,
    rng: Rng,
    params: usize,
    macs: u64,
    /// Uses of each node name, to keep names unique when a scope repeats an op.
    node_names: HashMap<String, usize>,
    relu6_bounds: Option<(String, String)>,
}

fn pool_out(size: usize, k: usize, stride: usize, pad: usize, node: &str) -> Result<usize> {
    (size + 2 * pad)
        .checked_sub(k)
        .map(|d| d / stride + 1)
        .ok_or_else(|| Error::shape(node, format!("window {k} larger than padded input {size}")))
}

impl Net {
    /// A network whose weights are seeded from `name`.
    pub(crate) fn new(name: &str) -> Net {
        Net {
            graph: GraphBuilder::new(name),
            rng: Rng::from_name(name),
            params: 0,
            macs: 0,
            node_names: HashMap::new(),
            relu6_bounds: None,
        }
    }

    /// Declares the float32 input `[batch, c, h, w]`, expected to be roughly N(0, 1).
    pub(crate) fn input(&mut self, c: usize, h: usize, w: usize) -> Result<Fm> {
        let dims = ["batch".into(), c.into(), h.into(), w.into()];
        self.graph.input(INPUT, DType::F32, &dims)?;
        Ok(Fm {
            name: INPUT.into(),
            c,
            h,
            w,
            stats: Stats::UNIT,
        })
    }

    /// Adds a node named `scope/op` (made unique) with one output, and returns the
    /// output's name (PyTorch style: `<node>_output_0`), or `output` when given.
    fn node(
        &mut self,
        scope: &str,
        op: &str,
        inputs: &[&str],
        attrs: &[Attribute],
        output: Option<&str>,
    ) -> Result<String> {
        let base = format!("{scope}/{op}");
        let uses = self.node_names.entry(base.clone()).or_insert(0);
        let name = if *uses == 0 {
            base
        } else {
            format!("{base}_{uses}")
        };
        *uses += 1;
        let out = output.map_or_else(|| format!("{name}_output_0"), str::to_string);
        self.graph.add_node(&name, op, inputs, &[&out], attrs)?;
        Ok(out)
    }

    /// A trainable tensor (counted in the parameter total).
    fn param(&mut self, name: &str, dims: &[usize], data: &[f32]) -> Result<()> {
        self.params += data.len();
        self.graph.add_initializer(name, dims, data)
    }

    /// A non-trainable tensor (BN running statistics, Clip bounds).
    fn buffer(&mut self, name: &str, dims: &[usize], data: &[f32]) -> Result<()> {
        self.graph.add_initializer(name, dims, data)
    }

    /// Conv named like the torchvision module `scope`, weights `scope.weight`
    /// (and `scope.bias` when `bias`). Output is scaled to mean square ~1.
    fn conv(&mut self, scope: &str, x: &Fm, spec: ConvSpec, bias: bool) -> Result<Fm> {
        let ConvSpec {
            cout,
            k,
            stride,
            groups,
        } = spec;
        if groups == 0 || !x.c.is_multiple_of(groups) || cout % groups != 0 {
            return Err(Error::shape(
                scope,
                format!("{} -> {cout} channels in {groups} groups", x.c),
            ));
        }
        let pad = (k - 1) / 2;
        let h = pool_out(x.h, k, stride, pad, scope)?;
        let w = pool_out(x.w, k, stride, pad, scope)?;
        let cin_g = x.c / groups;
        let fan_in = cin_g * k * k;
        let std = (1.0 / (fan_in as f64 * x.stats.m2).sqrt()) as f32;
        let dims = [cout, cin_g, k, k];
        let weight = self.rng.normals(cout * fan_in, 0.0, std);
        let wname = format!("{scope}.weight");
        self.param(&wname, &dims, &weight)?;
        let mut inputs = vec![x.name.as_str(), wname.as_str()];
        let bname = format!("{scope}.bias");
        let mut stats = Stats { mean: 0.0, m2: 1.0 };
        if bias {
            stats.m2 += 0.01;
            let b = self.rng.normals(cout, 0.0, 0.1);
            self.param(&bname, &[cout], &b)?;
            inputs.push(&bname);
        }
        let (k, s, p) = (k as i64, stride as i64, pad as i64);
        let attrs = [
            Attribute::ints("dilations", &[1, 1]),
            Attribute::int("group", groups as i64),
            Attribute::ints("kernel_shape", &[k, k]),
            Attribute::ints("pads", &[p, p, p, p]),
            Attribute::ints("strides", &[s, s]),
        ];
        let name = self.node(scope, "Conv", &inputs, &attrs, None)?;
        self.macs += (cout * fan_in * h * w) as u64;
        Ok(Fm {
            name,
            c: cout,
            h,
            w,
            stats,
        })
    }

    /// Eval-mode BatchNormalization with non-trivial statistics: gamma in [0.5, 1.5),
    /// beta and running mean ~N(0, 0.1), running variance in [0.5, 2).
    fn batch_norm(&mut self, scope: &str, x: &Fm) -> Result<Fm> {
        let c = x.c;
        let gamma = self.rng.uniforms(c, 0.5, 1.5);
        let beta = self.rng.normals(c, 0.0, 0.1);
        let mean = self.rng.normals(c, 0.0, 0.1);
        let var = self.rng.uniforms(c, 0.5, 2.0);
        let names = ["weight", "bias", "running_mean", "running_var"].map(|s| format!("{scope}.{s}"));
        self.param(&names[0], &[c], &gamma)?;
        self.param(&names[1], &[c], &beta)?;
        self.buffer(&names[2], &[c], &mean)?;
        self.buffer(&names[3], &[c], &var)?;
        let attrs = [
            Attribute::float("epsilon", 1e-5),
            Attribute::float("momentum", 0.9),
        ];
        let inputs = [x.name.as_str(), &names[0], &names[1], &names[2], &names[3]];
        let name = self.node(scope, "BatchNormalization", &inputs, &attrs, None)?;
        Ok(Fm {
            name,
            stats: x.stats.batch_norm(),
            ..x.clone()
        })
    }

    pub(crate) fn relu(&mut self, scope: &str, x: &Fm) -> Result<Fm> {
        let name = self.node(scope, "Relu", &[&x.name], &[], None)?;
        Ok(Fm {
            name,
            stats: x.stats.relu(),
            ..x.clone()
        })
    }

    /// `Clip(x, 0, 6)` with the bounds as inputs (opset 11+), shared by all uses.
    pub(crate) fn relu6(&mut self, scope: &str, x: &Fm) -> Result<Fm> {
        let (lo, hi) = match &self.relu6_bounds {
            Some(b) => b.clone(),
            None => {
                let b = ("relu6.min".to_string(), "relu6.max".to_string());
                self.buffer(&b.0, &[], &[0.0])?;
                self.buffer(&b.1, &[], &[6.0])?;
                self.relu6_bounds = Some(b.clone());
                b
            }
        };
        let name = self.node(scope, "Clip", &[&x.name, &lo, &hi], &[], None)?;
        Ok(Fm {
            name,
            stats: x.stats.relu(),
            ..x.clone()
        })
    }

    /// Conv (no bias) → BatchNormalization → activation, as torchvision's
    /// `Conv2dNormActivation` and the ResNet blocks export.
    pub(crate) fn conv_bn(&mut self, conv: &str, bn: &str, x: &Fm, spec: ConvSpec, act: Act) -> Result<Fm> {
        let y = self.conv(conv, x, spec, false)?;
        let y = self.batch_norm(bn, &y)?;
        match act {
            Act::Linear => Ok(y),
            Act::Relu => self.relu(bn, &y),
            Act::Relu6 => self.relu6(bn, &y),
        }
    }

    /// Residual sum `a + b` (same shape).
    pub(crate) fn add(&mut self, scope: &str, a: &Fm, b: &Fm) -> Result<Fm> {
        if (a.c, a.h, a.w) != (b.c, b.h, b.w) {
            return Err(Error::shape(scope, format!("adding {a:?} and {b:?}")));
        }
        let name = self.node(scope, "Add", &[&a.name, &b.name], &[], None)?;
        Ok(Fm {
            name,
            stats: a.stats.add(b.stats),
            ..a.clone()
        })
    }

    /// torchvision's ResNet stem pool: `MaxPool2d(3, stride=2, padding=1)`.
    pub(crate) fn max_pool_3x3(&mut self, scope: &str, x: &Fm) -> Result<Fm> {
        let h = pool_out(x.h, 3, 2, 1, scope)?;
        let w = pool_out(x.w, 3, 2, 1, scope)?;
        let attrs = [
            Attribute::int("ceil_mode", 0),
            Attribute::ints("dilations", &[1, 1]),
            Attribute::ints("kernel_shape", &[3, 3]),
            Attribute::ints("pads", &[1, 1, 1, 1]),
            Attribute::ints("strides", &[2, 2]),
        ];
        let name = self.node(scope, "MaxPool", &[&x.name], &attrs, None)?;
        Ok(Fm {
            name,
            h,
            w,
            stats: x.stats.max_pool_3x3(),
            ..x.clone()
        })
    }

    /// `AdaptiveAvgPool2d(1)` as exported: GlobalAveragePool.
    pub(crate) fn global_avg_pool(&mut self, scope: &str, x: &Fm) -> Result<Fm> {
        let name = self.node(scope, "GlobalAveragePool", &[&x.name], &[], None)?;
        // Averaging keeps only the (squared) channel means; for ReLU outputs that
        // is about 1/pi of the mean square.
        Ok(Fm {
            name,
            h: 1,
            w: 1,
            stats: x.stats.global_pool(),
            ..x.clone()
        })
    }

    /// Squeeze-and-excitation as torchvision's `SqueezeExcitation`: pool, 1x1 conv
    /// with bias, ReLU, 1x1 conv with bias, Sigmoid, then scale the input.
    pub(crate) fn squeeze_excite(&mut self, scope: &str, x: &Fm, squeeze: usize) -> Result<Fm> {
        let pooled = self.global_avg_pool(&format!("{scope}.avgpool"), x)?;
        let s = self.conv(&format!("{scope}.fc1"), &pooled, conv(squeeze, 1, 1), true)?;
        let s = self.relu(&format!("{scope}.activation"), &s)?;
        let s = self.conv(&format!("{scope}.fc2"), &s, conv(x.c, 1, 1), true)?;
        let gate = self.node(
            &format!("{scope}.scale_activation"),
            "Sigmoid",
            &[&s.name],
            &[],
            None,
        )?;
        let name = self.node(scope, "Mul", &[&gate, &x.name], &[], None)?;
        Ok(Fm {
            name,
            stats: x.stats.sigmoid_gated(),
            ..x.clone()
        })
    }

    /// The classification head: GlobalAveragePool → Flatten → Gemm(transB=1) into
    /// the graph output `logits` `[batch, classes]`. `fc` names the Linear module.
    pub(crate) fn classifier(&mut self, fc: &str, x: &Fm, classes: usize) -> Result<()> {
        let pooled = self.global_avg_pool("avgpool", x)?;
        let flat = self.node(
            "flatten",
            "Flatten",
            &[&pooled.name],
            &[Attribute::int("axis", 1)],
            None,
        )?;
        // Logits of roughly unit scale, whatever the scale of the features.
        let std = (1.0 / (x.c as f64 * pooled.stats.m2).sqrt()) as f32;
        let weight = self.rng.normals(classes * x.c, 0.0, std);
        let bias = self.rng.normals(classes, 0.0, 0.1);
        let (wname, bname) = (format!("{fc}.weight"), format!("{fc}.bias"));
        self.param(&wname, &[classes, x.c], &weight)?;
        self.param(&bname, &[classes], &bias)?;
        let attrs = [
            Attribute::float("alpha", 1.0),
            Attribute::float("beta", 1.0),
            Attribute::int("transB", 1),
        ];
        self.node(fc, "Gemm", &[&flat, &wname, &bname], &attrs, Some(OUTPUT))?;
        self.macs += (classes * x.c) as u64;
        self.graph
            .output(OUTPUT, DType::F32, &["batch".into(), Dim::Fixed(classes)])
    }

    pub(crate) fn finish(self) -> Result<Built> {
        Ok(Built {
            onnx: self.graph.finish()?,
            params: self.params,
            macs: self.macs,
        })
    }
}
