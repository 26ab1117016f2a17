// The CUDA C++ that the kernels use, defined for a plain C++ compiler, so that the same
// sources run on the CPU (tests on machines without a GPU; see emulator.cpp). Kernels must not
// use `__syncthreads` or shared memory: each thread of the grid runs to completion in turn.
#ifndef BANDED_EMULATOR_HPP
#define BANDED_EMULATOR_HPP

#include <cmath>

#define __global__
#define __device__
#define __restrict__ __restrict

struct dim3 {
    unsigned x, y, z;
};

// Set by the grid runner before each thread runs.
extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

using std::log;
using std::sqrt;

#endif
