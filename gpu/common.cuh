// Shared by every kernel file: compiled by NVRTC for the device (prepended to each `*.cu`),
// or as plain C++ on the host under `emulator.hpp` (tests without a GPU).
//
// Layout (docs/ARCHITECTURE.md, "The CUDA backend"): every batched array is interleaved over
// the whole batch, element `k` of system `s` at `k * batch + s`, so consecutive threads
// (consecutive systems) read consecutive addresses.
#ifndef BANDED_COMMON_CUH
#define BANDED_COMMON_CUH

typedef long long i64;

// The global index of this thread in a one-dimensional grid.
__device__ inline i64 global_id() { return (i64)blockIdx.x * (i64)blockDim.x + (i64)threadIdx.x; }

__device__ inline double b_sqrt(double x) { return sqrt(x); }
__device__ inline float b_sqrt(float x) { return sqrtf(x); }
__device__ inline double b_log(double x) { return log(x); }
__device__ inline float b_log(float x) { return logf(x); }
// True for a finite value (false for NaN and ±∞), without relying on a math library.
template <class T> __device__ inline bool b_finite(T x) { return x - x == x - x; }
__device__ inline i64 b_min(i64 a, i64 b) { return a < b ? a : b; }

// `extern "C"` entry points `NAME_f32` and `NAME_f64` of the kernel template `NAME<T>`:
// `PARAMS` is the parameter list, written with `T` for the element type, `ARGS` the argument
// names. (Each entry point lives in a namespace where `T` names its element type.)
#define BANDED_KERNEL(NAME, PARAMS, ARGS) \
    namespace banded_f32 { typedef float T; extern "C" __global__ void NAME##_f32 PARAMS { NAME<T> ARGS; } } \
    namespace banded_f64 { typedef double T; extern "C" __global__ void NAME##_f64 PARAMS { NAME<T> ARGS; } }

#endif
