//! The device handle: a CUDA context, its stream and the compiled kernels, or the host
//! emulator; memory, copies and kernel launches.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr, DriverError, LaunchArgs, LaunchConfig, PushKernelArg, ValidAsZeroBits};

use super::nvrtc::{self, KERNEL_SOURCES};
use crate::error::{Error, Result};
use crate::scalar::Real;

/// An element type of device arrays: `f32` or `f64` (kernels are named `…_f32`, `…_f64`).
pub trait CudaReal: Real + Elem {
    /// The suffix of this type's kernels.
    const SUFFIX: &'static str;
}
impl CudaReal for f32 {
    const SUFFIX: &'static str = "f32";
}
impl CudaReal for f64 {
    const SUFFIX: &'static str = "f64";
}

/// Threads per block of every launch (one-dimensional grids).
const BLOCK: usize = 128;

/// A handle on one CUDA device (context, stream, kernels compiled for its architecture) or
/// on the host emulator. Cheap to clone (shared); every array made with it lives on it, and
/// every operation runs in order on its one stream.
#[derive(Clone)]
pub struct CudaBackend {
    inner: Arc<Inner>,
}

enum Inner {
    Device(Device),
    #[cfg(feature = "cuda-emulator")]
    Emulator,
}

struct Device {
    ordinal: usize,
    name: String,
    arch: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    module: Arc<CudaModule>,
    functions: Mutex<HashMap<String, CudaFunction>>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// `r`, or [`Error::Cuda`] saying `what` failed and how.
pub(crate) fn driver<T>(what: impl FnOnce() -> String, r: std::result::Result<T, DriverError>) -> Result<T> {
    r.map_err(|e| Error::Cuda { what: what(), reason: format!("{e:?}") })
}

impl CudaBackend {
    /// Opens CUDA device `ordinal`, compiles the kernels of `gpu/` for its architecture with
    /// NVRTC (once per handle; a few seconds) and creates the stream every operation runs on.
    ///
    /// Errors: [`Error::Cuda`] when the CUDA driver library or NVRTC cannot be loaded (no
    /// NVIDIA driver, no CUDA), when there is no device `ordinal` (with the number of devices),
    /// or when a kernel does not compile (with NVRTC's log). Never panics for want of CUDA.
    pub fn new(ordinal: usize) -> Result<Self> {
        let what = || format!("opening device {ordinal}");
        // SAFETY: only tries to open the library by its candidate names.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(Error::Cuda { what: what(), reason: "the CUDA driver library (libcuda) could not be loaded: no NVIDIA driver on this machine".into() });
        }
        if !nvrtc::nvrtc_present() {
            return Err(Error::Cuda { what: what(), reason: "libnvrtc could not be loaded (install the CUDA toolkit or the `nvidia-cuda-nvrtc` wheel and put its lib folder on LD_LIBRARY_PATH)".into() });
        }
        let count = driver(what, CudaContext::device_count())?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::Cuda { what: what(), reason: format!("this machine has {count} CUDA device(s)") });
        }
        let ctx = driver(what, CudaContext::new(ordinal))?;
        // SAFETY: every buffer and launch of this handle uses its one stream, in order, so
        // no cross-stream synchronization is needed (and frees are stream-ordered).
        unsafe { ctx.disable_event_tracking() };
        let (major, minor) = driver(what, ctx.compute_capability())?;
        let arch = format!("sm_{major}{minor}");
        let name = driver(what, ctx.name())?;
        let source: String = KERNEL_SOURCES.iter().map(|(_, s)| *s).collect::<Vec<_>>().join("\n");
        let compiled = nvrtc::compile("banded.cu", &source, &arch)?;
        let module = driver(|| format!("loading the kernels on device {ordinal}"), ctx.load_module(cudarc::nvrtc::Ptx::from_src(compiled.ptx)))?;
        let stream = driver(what, ctx.new_stream())?;
        let device = Device { ordinal, name, arch, ctx, stream, module, functions: Mutex::new(HashMap::new()) };
        Ok(Self { inner: Arc::new(Inner::Device(device)) })
    }

    /// The host emulator: the same kernels (`gpu/*.cu`) compiled as C++ and run on the CPU one
    /// thread of the grid at a time, behind the same API. For tests on machines without a GPU;
    /// slow.
    #[cfg(feature = "cuda-emulator")]
    pub fn emulator() -> Self {
        Self { inner: Arc::new(Inner::Emulator) }
    }

    /// What this handle runs on, e.g. `cuda:0 (NVIDIA H200, sm_90)` or `emulator`.
    pub fn describe(&self) -> String {
        match &*self.inner {
            Inner::Device(d) => format!("cuda:{} ({}, {})", d.ordinal, d.name, d.arch),
            #[cfg(feature = "cuda-emulator")]
            Inner::Emulator => "emulator".into(),
        }
    }

    /// Waits until every operation queued on this handle has finished.
    ///
    /// Errors: [`Error::Cuda`] (a kernel failed, e.g. an illegal address).
    pub fn synchronize(&self) -> Result<()> {
        match &*self.inner {
            Inner::Device(d) => driver(|| "synchronizing".into(), d.stream.synchronize()),
            #[cfg(feature = "cuda-emulator")]
            Inner::Emulator => Ok(()),
        }
    }

    /// Runs `f` (which queues work on this handle) `reps` times after `warmup` runs and returns
    /// each run's time in milliseconds, measured with CUDA events on the stream (wall-clock
    /// time on the emulator).
    ///
    /// Errors: the first error of `f`, or [`Error::Cuda`].
    pub fn time_ms(&self, warmup: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<Vec<f64>> {
        for _ in 0..warmup {
            f()?;
        }
        self.synchronize()?;
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            match &*self.inner {
                Inner::Device(d) => {
                    let what = || "timing with CUDA events".to_string();
                    // Timing events (cudarc's default flags disable timing: `elapsed_ms` would fail).
                    let timed = Some(cudarc::driver::sys::CUevent_flags::CU_EVENT_DEFAULT);
                    let start = driver(what, d.stream.record_event(timed))?;
                    f()?;
                    let end = driver(what, d.stream.record_event(timed))?;
                    driver(what, end.synchronize())?;
                    times.push(driver(what, start.elapsed_ms(&end))? as f64);
                }
                #[cfg(feature = "cuda-emulator")]
                Inner::Emulator => {
                    let t = std::time::Instant::now();
                    f()?;
                    times.push(t.elapsed().as_secs_f64() * 1e3);
                }
            }
        }
        Ok(times)
    }

    pub(crate) fn same(&self, other: &CudaBackend) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// `len` zeroed elements.
    pub(crate) fn alloc<T: Elem>(&self, len: usize) -> Result<Buffer<T>> {
        Ok(Buffer(match &*self.inner {
            Inner::Device(d) => Mem::Device(driver(|| format!("allocating {len} elements of {}", std::any::type_name::<T>()), d.stream.alloc_zeros::<T>(len.max(1)))?),
            #[cfg(feature = "cuda-emulator")]
            Inner::Emulator => {
                let mut v = Vec::new();
                v.try_reserve_exact(len.max(1)).map_err(|_| Error::InvalidArgument { arg: "device array", reason: format!("cannot allocate {len} elements") })?;
                v.resize(len.max(1), T::default());
                Mem::Host(v)
            },
        }))
    }

    /// A copy of `data` on the device (as is: no change of layout).
    pub(crate) fn copy_to_device<T: Elem>(&self, data: &[T]) -> Result<Buffer<T>> {
        Ok(Buffer(match &*self.inner {
            Inner::Device(d) => {
                let mut b = driver(|| format!("allocating {} elements", data.len()), d.stream.alloc_zeros::<T>(data.len().max(1)))?;
                if !data.is_empty() {
                    let mut dst = b.slice_mut(..data.len());
                    driver(|| "copying to the device".into(), d.stream.memcpy_htod(data, &mut dst))?;
                }
                Mem::Device(b)
            }
            #[cfg(feature = "cuda-emulator")]
            Inner::Emulator => Mem::Host(if data.is_empty() { vec![T::default()] } else { data.to_vec() }),
        }))
    }

    /// The first `len` elements of `buf` on the host (as is).
    pub(crate) fn copy_to_host<T: Elem>(&self, buf: &Buffer<T>, len: usize) -> Result<Vec<T>> {
        match &buf.0 {
            Mem::Device(s) => {
                let mut out = vec![T::default(); len];
                if len > 0 {
                    driver(|| "copying to the host".into(), s.stream().memcpy_dtoh(&s.slice(..len), &mut out))?;
                }
                Ok(out)
            }
            Mem::Host(v) => Ok(v[..len].to_vec()),
        }
    }

    /// Element `index` of `buf` on the host (one element copied).
    pub(crate) fn copy_element<T: Elem>(&self, buf: &Buffer<T>, index: usize) -> Result<T> {
        match &buf.0 {
            Mem::Device(s) => {
                let mut out = [T::default()];
                driver(|| "copying to the host".into(), s.stream().memcpy_dtoh(&s.slice(index..index + 1), &mut out))?;
                Ok(out[0])
            }
            Mem::Host(v) => Ok(v[index]),
        }
    }

    /// A copy of `buf` (on the device).
    pub(crate) fn duplicate<T: Elem>(&self, buf: &Buffer<T>) -> Result<Buffer<T>> {
        Ok(Buffer(match &buf.0 {
            Mem::Device(s) => {
                Mem::Device(driver(|| "copying on the device".into(), s.stream().clone_dtod(s))?)
            }
            Mem::Host(v) => Mem::Host(v.clone()),
        }))
    }

    /// Launches kernel `name` (`name_f32` / `name_f64` for [`CudaReal`] kernels: the caller
    /// appends the suffix) with `threads` threads in blocks of [`BLOCK`].
    ///
    /// # Safety
    /// `args` must match the kernel's parameter list in number, order and type, and every
    /// buffer pointer must hold at least the elements the kernel reads or writes for the sizes
    /// passed (each kernel of `gpu/` documents its extents).
    pub(crate) unsafe fn launch(&self, name: &str, threads: usize, args: &[&dyn KernelArg]) -> Result<()> {
        if threads == 0 {
            return Ok(());
        }
        let blocks = threads.div_ceil(BLOCK);
        let what = || format!("launching {name} ({threads} threads)");
        let grid = u32::try_from(blocks).map_err(|_| Error::Cuda { what: what(), reason: format!("{blocks} blocks exceed the grid limit") })?;
        match &*self.inner {
            Inner::Device(d) => {
                let f = {
                    let mut cache = d.functions.lock().unwrap_or_else(|e| e.into_inner());
                    match cache.get(name) {
                        Some(f) => f.clone(),
                        None => {
                            let f = driver(what, d.module.load_function(name))?;
                            cache.insert(name.to_string(), f.clone());
                            f
                        }
                    }
                };
                let mut b = d.stream.launch_builder(&f);
                for a in args {
                    a.push(&mut b);
                }
                let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (BLOCK as u32, 1, 1), shared_mem_bytes: 0 };
                // SAFETY: the caller's contract (arguments match the kernel, buffers large enough).
                driver(what, unsafe { b.launch(cfg) }).map(|_| ())
            }
            #[cfg(feature = "cuda-emulator")]
            Inner::Emulator => {
                let cname = std::ffi::CString::new(name).map_err(|e| Error::Cuda { what: what(), reason: e.to_string() })?;
                let mut params: Vec<*mut c_void> = args.iter().map(|a| a.param()).collect();
                // SAFETY: the caller's contract; `params` points at live argument values.
                let rc = unsafe { banded_emulator_launch(cname.as_ptr(), grid, BLOCK as u32, params.as_mut_ptr()) };
                if rc != 0 {
                    return Err(Error::Cuda { what: what(), reason: "the emulator has no such kernel".into() });
                }
                Ok(())
            }
        }
    }

    /// The CUDA context (device handles only), e.g. to share it with other cudarc code.
    pub fn context(&self) -> Option<&Arc<CudaContext>> {
        match &*self.inner {
            Inner::Device(d) => Some(&d.ctx),
            #[cfg(feature = "cuda-emulator")]
            Inner::Emulator => None,
        }
    }
}

#[cfg(feature = "cuda-emulator")]
unsafe extern "C" {
    /// gpu/emulator.cpp: runs kernel `name` over `grid × block` threads on the CPU.
    fn banded_emulator_launch(name: *const std::ffi::c_char, grid: u32, block: u32, params: *mut *mut c_void) -> i32;
}

/// An element type of buffers: the reals and the `i64` of status arrays (sealed: not
/// nameable outside the crate).
pub trait Elem: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {}
impl Elem for f32 {}
impl Elem for f64 {}
impl Elem for i64 {}

enum Mem<T: Elem> {
    Device(CudaSlice<T>),
    #[cfg_attr(not(feature = "cuda-emulator"), allow(dead_code))]
    Host(Vec<T>),
}

/// Memory of a [`CudaBackend`]: device memory, or host memory under the emulator. Never empty
/// (at least one element is allocated, so every pointer is valid).
pub(crate) struct Buffer<T: Elem>(Mem<T>);

impl<T: Elem> Buffer<T> {
    /// The address, for a kernel that reads.
    pub(crate) fn ptr(&self) -> DevPtr {
        match &self.0 {
            Mem::Device(s) => DevPtr(s.device_ptr(s.stream()).0),
            Mem::Host(v) => DevPtr(v.as_ptr() as u64),
        }
    }
    /// The address, for a kernel that writes.
    pub(crate) fn ptr_mut(&mut self) -> DevPtr {
        match &mut self.0 {
            Mem::Device(s) => DevPtr(s.device_ptr(s.stream()).0),
            Mem::Host(v) => DevPtr(v.as_mut_ptr() as u64),
        }
    }
}

/// A device address as a kernel parameter (`T*`); 0 is `nullptr`.
#[derive(Clone, Copy, Debug)]
#[repr(transparent)]
pub(crate) struct DevPtr(pub(crate) u64);

// SAFETY: a `u64` address, passed as a pointer parameter (8 bytes on every CUDA target).
unsafe impl DeviceRepr for DevPtr {}

/// A kernel argument: a value whose bytes are the parameter (see [`CudaBackend::launch`]).
pub(crate) trait KernelArg {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>);
    /// A pointer to the value (CUDA's `kernelParams` convention, also the emulator's).
    #[cfg_attr(not(feature = "cuda-emulator"), allow(dead_code))]
    fn param(&self) -> *mut c_void;
}

impl<X: DeviceRepr> KernelArg for X {
    fn push<'a>(&'a self, b: &mut LaunchArgs<'a>) {
        b.arg(self);
    }
    fn param(&self) -> *mut c_void {
        self as *const X as *mut c_void
    }
}
