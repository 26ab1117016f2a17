//! Run-time compilation of the kernels of `gpu/` with NVRTC.

use std::ffi::CString;

use cudarc::nvrtc::{result, sys};

use crate::error::{Error, Result};

/// The shared header every kernel file is compiled with (prepended).
const COMMON: &str = include_str!("../../gpu/common.cuh");

/// The kernel sources, by file name: each is compiled after `gpu/common.cuh`.
pub const KERNEL_SOURCES: [(&str, &str); 3] = [
    ("layout.cu", include_str!("../../gpu/layout.cu")),
    ("llt.cu", include_str!("../../gpu/llt.cu")),
    ("smnn.cu", include_str!("../../gpu/smnn.cu")),
];

/// The output of one NVRTC compilation.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The PTX of the program.
    pub ptx: String,
    /// The compiler's log: empty when it had nothing to say (no warning).
    pub log: String,
}

/// Whether `libnvrtc` can be loaded (cudarc panics on first use when it cannot).
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to open the library by its candidate names; nothing is called.
    unsafe { sys::is_culib_present() }
}

/// Compiles `source` (one of [`KERNEL_SOURCES`], or all of them concatenated) for the virtual
/// or real architecture `arch` (e.g. `"sm_90"`), with `gpu/common.cuh` prepended.
///
/// Errors: [`Error::Cuda`] if NVRTC cannot be loaded, or with the compiler's log if the source
/// does not compile.
pub fn compile(name: &str, source: &str, arch: &str) -> Result<Compiled> {
    if !nvrtc_present() {
        return Err(Error::Cuda {
            what: "NVRTC".into(),
            reason: "libnvrtc could not be loaded (install the CUDA toolkit or the `nvidia-cuda-nvrtc` wheel and put its lib folder on LD_LIBRARY_PATH)".into(),
        });
    }
    let fail = |reason: String| Error::Cuda { what: format!("NVRTC compiling {name} for {arch}"), reason };
    let src = CString::new(format!("{COMMON}\n{source}")).map_err(|e| fail(e.to_string()))?;
    let cname = CString::new(name).map_err(|e| fail(e.to_string()))?;
    let prog = result::create_program(&src, Some(&cname)).map_err(|e| fail(format!("{e:?}")))?;
    let opts = [format!("--gpu-architecture={arch}"), "--std=c++17".into()];
    // SAFETY: `prog` is a live program created above; it is destroyed once below.
    let compiled = unsafe { result::compile_program(prog, &opts) };
    // SAFETY: as above.
    let log = unsafe { result::get_program_log(prog) }.map(|l| c_chars(&l)).unwrap_or_default();
    let ptx = match compiled {
        // SAFETY: as above; the program compiled.
        Ok(()) => unsafe { result::get_ptx(prog) }.map(|p| c_chars(&p)).map_err(|e| fail(format!("{e:?}"))),
        Err(e) => Err(fail(format!("{e:?}\n{log}"))),
    };
    // SAFETY: as above; `prog` is not used after this.
    let _ = unsafe { result::destroy_program(prog) };
    Ok(Compiled { ptx: ptx?, log: log.trim().to_string() })
}

/// A NUL-terminated C character buffer as a `String` (lossy).
fn c_chars(v: &[std::ffi::c_char]) -> String {
    let bytes: Vec<u8> = v.iter().take_while(|&&c| c != 0).map(|&c| c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
