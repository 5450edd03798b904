//! The GPU a session runs on: adapter choice, device, compiled pipelines, and
//! wgpu's errors turned into kiln's (wgpu's default is to panic on them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

use super::Precision;
use crate::backend::gpu::Entry;

/// Set to part of an adapter's name (as `kiln` prints it) to choose that adapter.
pub const ADAPTER_ENV: &str = "KILN_WGPU_ADAPTER";

/// A compiled entry point and the layout of its bind group.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub precision: Precision,
    pipelines: Mutex<HashMap<Entry, Arc<Pipeline>>>,
    /// Errors wgpu reported outside any error scope (device loss, mostly).
    stray_error: Arc<Mutex<Option<String>>>,
}

fn unavailable(reason: impl Into<String>) -> Error {
    Error::BackendUnavailable {
        backend: "wgpu".into(),
        reason: reason.into(),
    }
}

/// Preference order: real GPUs before software ones, native APIs before GL.
fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let api = u8::from(info.backend == wgpu::Backend::Gl);
    (kind, api)
}

/// One line naming an adapter: `llvmpipe (LLVM 15.0.6, 256 bits) (Vulkan, Cpu)`.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// An error and its causes on one line (wgpu's own message is just the category).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(cause.to_string().trim());
        source = cause.source();
    }
    s
}

impl Gpu {
    /// Opens the preferred adapter (or the one [`ADAPTER_ENV`] names).
    pub fn open(precision: Precision) -> Result<Gpu> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        if adapters.is_empty() {
            return Err(unavailable(
                "no GPU adapter found (Linux needs a Vulkan driver and loader, e.g. Debian's mesa-vulkan-drivers and libvulkan1)",
            ));
        }
        if let Ok(wanted) = std::env::var(ADAPTER_ENV) {
            let wanted = wanted.to_lowercase();
            adapters.retain(|a| describe(&a.get_info()).to_lowercase().contains(&wanted));
            if adapters.is_empty() {
                return Err(unavailable(format!(
                    "no GPU adapter matches {ADAPTER_ENV}={wanted}"
                )));
            }
        }
        adapters.sort_by_key(|a| rank(&a.get_info()));
        let adapter = adapters.swap_remove(0);
        let info = adapter.get_info();
        let mut required_features = wgpu::Features::empty();
        if precision == Precision::Tf32 {
            return Err(Error::Usage(
                "TF32 is a CUDA mode; the wgpu backend computes f32 or f16".into(),
            ));
        }
        if precision == Precision::F16 {
            if !adapter.features().contains(wgpu::Features::SHADER_F16) {
                return Err(unavailable(format!(
                    "{} has no f16 shader support",
                    describe(&info)
                )));
            }
            required_features |= wgpu::Features::SHADER_F16;
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("kiln"),
            required_features,
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| unavailable(format!("{}: {e}", describe(&info))))?;
        let stray_error = Arc::new(Mutex::new(None));
        let sink = stray_error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| chain(&e));
            }
        }));
        let sink = stray_error.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut slot) = sink.lock() {
                slot.get_or_insert_with(|| format!("GPU device lost ({reason:?}): {message}"));
            }
        });
        Ok(Gpu {
            device,
            queue,
            info,
            precision,
            pipelines: Mutex::new(HashMap::new()),
            stray_error,
        })
    }

    /// Bytes of one stored element.
    pub fn element_bytes(&self) -> usize {
        self.precision.element_bytes()
    }

    /// Runs `f` inside validation and out-of-memory error scopes, returning the
    /// first error wgpu reports for it as `Error::Gpu`-style message.
    pub fn checked<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let errors = [
            pollster::block_on(validation.pop()),
            pollster::block_on(oom.pop()),
        ];
        if let Some(e) = errors.into_iter().flatten().next() {
            return Err(Error::invalid(format!("wgpu error while {what}: {}", chain(&e))));
        }
        if let Some(e) = self.stray_error.lock().ok().and_then(|mut s| s.take()) {
            return Err(Error::invalid(format!("wgpu error while {what}: {e}")));
        }
        Ok(value)
    }

    /// The compiled pipeline of `shader` (built on first use, then cached).
    pub fn pipeline(&self, shader: Entry) -> Result<Arc<Pipeline>> {
        let mut cache = self
            .pipelines
            .lock()
            .map_err(|_| Error::invalid("pipeline cache poisoned"))?;
        if let Some(p) = cache.get(&shader) {
            return Ok(p.clone());
        }
        let pipeline = self.checked(&format!("compiling {}", shader.name()), || self.build(shader))?;
        let pipeline = Arc::new(pipeline);
        cache.insert(shader, pipeline.clone());
        Ok(pipeline)
    }

    fn build(&self, shader: Entry) -> Pipeline {
        let (reads, writes) = shader.bindings();
        let storage = |binding: u32, read_only: bool| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        }];
        for i in 0..reads + writes {
            entries.push(storage(i as u32 + 1, i < reads));
        }
        let label = Some(shader.name());
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label,
                entries: &entries,
            });
        let pipeline_layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label,
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label,
            source: wgpu::ShaderSource::Wgsl(super::shader::source(shader, self.precision).into()),
        });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label,
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(shader.name()),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            });
        Pipeline { pipeline, layout }
    }
}
