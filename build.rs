//! Compiles the CUDA kernels of `gpu/` as C++ for the host emulator (feature `cuda-emulator`
//! only; a plain or `cuda` build compiles no C++).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "cuda-emulator")]
    {
        for f in ["common.cuh", "emulator.hpp", "emulator.cpp", "layout.cu", "llt.cu", "smnn.cu"] {
            println!("cargo::rerun-if-changed=gpu/{f}");
        }
        cc::Build::new()
            .cpp(true)
            .std("c++17")
            .file("gpu/emulator.cpp")
            .warnings(true)
            .extra_warnings(true)
            .warnings_into_errors(true)
            .opt_level(2)
            .compile("banded_emulator");
    }
}
