//! Channels-last values around depthwise convolutions (`backend/cpu/channels_last.rs`):
//! the CPU lays out MobileNetV2's small-plane inverted-residual blocks `[N, H, W, C]`
//! where AVX-512 runs their kernels. The numbers must not change (against the same
//! model all NCHW), and the layout must really be used where it applies.

use kiln::{CpuOptions, Session, SessionOptions, Tensor};

fn session(bytes: Vec<u8>, channels_last: bool) -> Session {
    let options = SessionOptions {
        threads: Some(2),
        cpu: CpuOptions {
            channels_last,
            ..CpuOptions::default()
        },
        ..SessionOptions::default()
    };
    Session::from_bytes(bytes, options).expect("load")
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[test]
fn mobilenet_v2_channels_last_matches_nchw() {
    let zoo = kiln::zoo::build("mobilenet_v2").expect("zoo");
    let (cl, nchw) = (session(zoo.onnx.clone(), true), session(zoo.onnx, false));
    for batch in [1, 2] {
        let mut shape = zoo.input_shape.to_vec();
        shape[0] = batch;
        let x = Tensor::random_normal(shape, 7).expect("input");
        let mut labels = Vec::new();
        let got = cl
            .run_profiled(std::slice::from_ref(&x), &mut |p| labels.push(p.algorithm))
            .expect("channels-last run");
        let want = nchw.run(std::slice::from_ref(&x)).expect("NCHW run");
        let (g, w) = (got[0].to_f32_vec(), want[0].to_f32_vec());
        let rel = kiln::tensor::rel_l2(&g, &w);
        println!("mobilenet_v2 batch {batch}: channels-last vs NCHW rel-L2 {rel:.2e}");
        assert!(rel <= 1e-5, "batch {batch}: rel-L2 {rel:.2e}");
        let depthwise = labels.iter().filter(|l| **l == "channels-last depthwise").count();
        if avx512() {
            // Blocks 4 to 17: 14 depthwise convolutions. Block 4's strides from
            // 56x56 to 28x28 into 32 channels (its projection reads the image in
            // place); blocks 2 and 3 stay NCHW (56x56 projections into 24).
            assert_eq!(depthwise, 14, "batch {batch}: {labels:?}");
        } else {
            println!("skipped the layout check: channels-last kernels need AVX-512F");
            assert_eq!(depthwise, 0);
        }
    }
}
