//! Runs a [`Plan`] of [`GpuKernel`]s: everything is allocated and bound once per
//! plan (arena slots, uploaded constants and weights, bind groups), so a run is
//! one input upload, one command encoder with one compute pass, one submit and one
//! readback of all the outputs.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use half::f16;

use crate::error::{Error, Result};
use crate::plan::{Loc, Plan};
use crate::tensor::{DType, Tensor};

use super::device::{Gpu, Pipeline};
use super::Precision;
use crate::backend::gpu::{BufferId, GpuKernel};

/// A plan whose steps run wgpu kernels.
pub type GpuPlan = Plan<GpuKernel>;

struct Pass {
    pipeline: Arc<Pipeline>,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
}

/// How one graph output comes back.
enum OutputSource {
    /// Bytes `[offset, offset + len elements)` of the readback buffer.
    Readback {
        offset: u64,
        len: usize,
        shape: Vec<usize>,
    },
    Const(usize),
    Input {
        index: usize,
        shape: Vec<usize>,
    },
}

/// A plan made resident on the GPU. Runs are serialised (one set of buffers).
pub struct GpuProgram {
    gpu: Arc<Gpu>,
    plan: GpuPlan,
    buffers: HashMap<BufferId, wgpu::Buffer>,
    passes: Vec<Pass>,
    /// Caller inputs to upload before each run: (input index, buffer id).
    uploads: Vec<usize>,
    copies: Vec<(BufferId, u64, u64)>,
    readback: Option<wgpu::Buffer>,
    outputs: Vec<OutputSource>,
    lock: Mutex<()>,
}

fn align(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

impl GpuProgram {
    /// Allocates, uploads and binds everything `plan` needs.
    pub fn new(gpu: Arc<Gpu>, plan: GpuPlan, inputs: &[Tensor]) -> Result<GpuProgram> {
        let g = gpu.clone();
        g.checked("preparing the GPU program", || {
            GpuProgram::build(gpu, plan, inputs)
        })?
    }

    fn build(gpu: Arc<Gpu>, plan: GpuPlan, inputs: &[Tensor]) -> Result<GpuProgram> {
        let esize = gpu.element_bytes() as u64;
        let max_binding = gpu.device.limits().max_storage_buffer_binding_size;
        let device = &gpu.device;
        let storage =
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
        // Every buffer starts as NaNs (all bits set, in f32 and in f16), so an
        // element a kernel forgets to write shows up in any comparison.
        let create = |label: &str, elements: usize| -> Result<wgpu::Buffer> {
            let bytes = align((elements as u64 * esize).max(4), 4);
            if bytes > max_binding {
                return Err(Error::Limit(format!(
                    "{label} needs {bytes} bytes, more than this GPU binds at once ({max_binding})"
                )));
            }
            let buffer = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage: storage,
                mapped_at_creation: true,
            });
            buffer
                .slice(..)
                .get_mapped_range_mut()
                .map_err(|e| Error::invalid(format!("cannot initialise a GPU buffer: {e}")))?
                .copy_from_slice(&vec![0xff; bytes as usize]);
            buffer.unmap();
            Ok(buffer)
        };
        let upload = |label: &str, data: &[f32]| -> Result<wgpu::Buffer> {
            let buffer = create(label, data.len())?;
            gpu.queue.write_buffer(&buffer, 0, &encode(gpu.precision, data));
            Ok(buffer)
        };

        let mut buffers = HashMap::new();
        for (i, s) in plan.slots.iter().enumerate() {
            if s.dtype != DType::F32 {
                return Err(Error::invalid(format!(
                    "internal: {} arena slot on the GPU",
                    s.dtype
                )));
            }
            buffers.insert(BufferId::Slot(i), create("slot", s.len)?);
        }
        buffers.insert(BufferId::Dummy, create("unused", 4)?);

        // Which buffer each step input is, creating input and constant buffers on
        // first use.
        let mut uploads = Vec::new();
        let mut ensure = |id: BufferId, buffers: &mut HashMap<BufferId, wgpu::Buffer>| -> Result<()> {
            let Entry::Vacant(e) = buffers.entry(id) else {
                return Ok(());
            };
            match id {
                BufferId::Input(index) => {
                    let t = inputs
                        .get(index)
                        .ok_or_else(|| Error::invalid("internal: missing plan input"))?;
                    e.insert(create("input", t.len())?);
                    uploads.push(index);
                }
                BufferId::Const(c) => {
                    let t = &plan.constants[c];
                    let data = t.typed::<f32>().map_err(|_| {
                        Error::invalid(format!("internal: a {} constant bound on the GPU", t.dtype()))
                    })?;
                    e.insert(upload("constant", data)?);
                }
                // Slots, weights, scratch and the dummy are created up front.
                _ => {}
            }
            Ok(())
        };

        let params_align = u64::from(device.limits().min_uniform_buffer_offset_alignment).max(16);
        let mut params = Vec::<u8>::new();
        let mut pending = Vec::new();
        for (s, step) in plan.steps.iter().enumerate() {
            for (index, w) in step.kernel.weights.iter().enumerate() {
                buffers.insert(BufferId::Weight { step: s, index }, upload("weights", w)?);
            }
            for (index, &len) in step.kernel.scratch.iter().enumerate() {
                buffers.insert(BufferId::Scratch { step: s, index }, create("scratch", len)?);
            }
            for d in &step.kernel.dispatches {
                d.check_bindings()?;
                let mut ids = Vec::with_capacity(d.reads.len() + d.writes.len());
                for &b in d.reads.iter().chain(&d.writes) {
                    let id = BufferId::of_bind(b, s, step)?;
                    ensure(id, &mut buffers)?;
                    ids.push(id);
                }
                let offset = align(params.len() as u64, params_align);
                params.resize(offset as usize, 0);
                params.extend_from_slice(&d.params);
                let size = align(d.params.len() as u64, 16);
                params.resize((offset + size) as usize, 0);
                pending.push((d.entry, ids, offset, size, d.groups));
            }
        }
        let params_buffer = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: align(params.len() as u64, 16).max(16),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        gpu.queue.write_buffer(&params_buffer, 0, &params);

        let mut passes = Vec::with_capacity(pending.len());
        for (shader, ids, offset, size, groups) in pending {
            let pipeline = gpu.pipeline(shader)?;
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &params_buffer,
                    offset,
                    size: wgpu::BufferSize::new(size),
                }),
            }];
            for (k, id) in ids.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: k as u32 + 1,
                    resource: buffers[id].as_entire_binding(),
                });
            }
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(shader.name()),
                layout: &pipeline.layout,
                entries: &entries,
            });
            passes.push(Pass {
                pipeline,
                bind_group,
                groups,
            });
        }

        let mut outputs = Vec::new();
        let mut copies = Vec::new();
        let mut readback_bytes = 0u64;
        for loc in &plan.outputs {
            outputs.push(match loc {
                Loc::Slot { slot, shape } => {
                    let len: usize = shape.iter().product();
                    let bytes = align((len as u64 * esize).max(4), 4);
                    copies.push((BufferId::Slot(*slot), readback_bytes, bytes));
                    let source = OutputSource::Readback {
                        offset: readback_bytes,
                        len,
                        shape: shape.clone(),
                    };
                    readback_bytes += bytes;
                    source
                }
                Loc::Const(c) => OutputSource::Const(*c),
                Loc::Input { index, shape } => OutputSource::Input {
                    index: *index,
                    shape: shape.clone(),
                },
            });
        }
        let readback = (readback_bytes > 0).then(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: readback_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        Ok(GpuProgram {
            gpu,
            plan,
            buffers,
            passes,
            uploads,
            copies,
            readback,
            outputs,
            lock: Mutex::new(()),
        })
    }

    pub fn plan(&self) -> &GpuPlan {
        &self.plan
    }

    /// One inference: upload, one submit, one readback.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let _serial = self
            .lock
            .lock()
            .map_err(|_| Error::invalid("GPU program lock poisoned"))?;
        let gpu = &self.gpu;
        let bytes = gpu.checked("running the model", || -> Result<Option<Vec<u8>>> {
            for &i in &self.uploads {
                let data = inputs[i].typed::<f32>()?;
                gpu.queue.write_buffer(
                    &self.buffers[&BufferId::Input(i)],
                    0,
                    &encode(gpu.precision, data),
                );
            }
            let mut encoder = gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("kiln") });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("forward"),
                    timestamp_writes: None,
                });
                for p in &self.passes {
                    pass.set_pipeline(&p.pipeline.pipeline);
                    pass.set_bind_group(0, &p.bind_group, &[]);
                    pass.dispatch_workgroups(p.groups[0], p.groups[1], p.groups[2]);
                }
            }
            let Some(readback) = &self.readback else {
                gpu.queue.submit([encoder.finish()]);
                return Ok(None);
            };
            for (id, offset, len) in &self.copies {
                encoder.copy_buffer_to_buffer(&self.buffers[id], 0, readback, *offset, *len);
            }
            gpu.queue.submit([encoder.finish()]);
            let slice = readback.slice(..);
            let (tx, rx) = std::sync::mpsc::channel();
            slice.map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
            gpu.device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| Error::invalid(format!("waiting for the GPU: {e}")))?;
            rx.recv()
                .map_err(|_| Error::invalid("GPU readback was dropped"))?
                .map_err(|e| Error::invalid(format!("GPU readback failed: {e}")))?;
            let bytes = {
                let view = slice
                    .get_mapped_range()
                    .map_err(|e| Error::invalid(format!("GPU readback failed: {e}")))?;
                view.to_vec()
            };
            readback.unmap();
            Ok(Some(bytes))
        })??;
        self.outputs
            .iter()
            .map(|o| match o {
                OutputSource::Readback { offset, len, shape } => {
                    let bytes = bytes.as_deref().unwrap_or_default();
                    let start = *offset as usize;
                    let end = start + len * gpu.element_bytes();
                    let data = decode(gpu.precision, bytes.get(start..end).unwrap_or_default());
                    Tensor::from_vec(shape.clone(), data)
                }
                OutputSource::Const(c) => Ok(self.plan.constants[*c].clone()),
                OutputSource::Input { index, shape } => inputs[*index].clone().reshaped(shape.clone()),
            })
            .collect()
    }
}

/// f32 data as the GPU stores it: the bytes themselves in f32 (no copy on the
/// per-run input upload), converted to f16 and padded to the 4-byte multiple that
/// buffer writes need otherwise.
fn encode(precision: Precision, data: &[f32]) -> Cow<'_, [u8]> {
    match precision {
        Precision::F32 | Precision::Tf32 => Cow::Borrowed(bytemuck::cast_slice(data)),
        Precision::F16 => {
            let h: Vec<f16> = data.iter().map(|&v| f16::from_f32(v)).collect();
            let mut bytes: Vec<u8> = bytemuck::cast_slice(&h).to_vec();
            bytes.resize(bytes.len().next_multiple_of(4), 0);
            Cow::Owned(bytes)
        }
    }
}

/// GPU-stored elements back to f32.
fn decode(precision: Precision, bytes: &[u8]) -> Vec<f32> {
    match precision {
        Precision::F32 | Precision::Tf32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Precision::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
    }
}
