// The grid runner of the host emulator: runs a kernel of gpu/*.cu on the CPU, one thread of
// the grid after another, with the arguments passed as CUDA's `cuLaunchKernel` takes them
// (`params[i]` points at the value of argument `i`). Built only for tests (the
// `cuda-emulator` feature, see build.rs).
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#define BANDED_HOST
#include "emulator.hpp"

thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

#include "common.cuh"
#include "layout.cu"
#include "llt.cu"
#include "smnn.cu"

namespace {

template <class... P, std::size_t... I>
void call(void (*f)(P...), void** params, std::index_sequence<I...>) {
    f(*static_cast<std::remove_reference_t<P>*>(params[I])...);
}

template <class... P>
void run(void (*f)(P...), unsigned grid, unsigned block, void** params) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx = {b, 0, 0};
            threadIdx = {t, 0, 0};
            call(f, params, std::index_sequence_for<P...>{});
        }
}

// "banded_f64::band_solve_f64" -> "band_solve_f64".
constexpr const char* strip(const char* qualified) {
    const char* name = qualified;
    for (const char* p = qualified; *p; ++p)
        if (*p == ':') name = p + 1;
    return name;
}

struct Entry {
    const char* name;
    void (*launch)(unsigned, unsigned, void**);
};

#define ENTRY(NAME) {strip(#NAME), [](unsigned g, unsigned b, void** p) { run(NAME, g, b, p); }}
#define ENTRIES(NAME) ENTRY(banded_f32::NAME##_f32), ENTRY(banded_f64::NAME##_f64)

const Entry KERNELS[] = {
    ENTRIES(interleave), ENTRIES(deinterleave), ENTRIES(first_bad),
    ENTRIES(band_factor), ENTRIES(band_solve), ENTRIES(band_logdet), ENTRIES(band_gradient), ENTRIES(band_inverse),
    ENTRIES(smnn_assemble), ENTRIES(smnn_rhs), ENTRIES(smnn_grads),
};

}  // namespace

// Runs kernel `name` over `grid` blocks of `block` threads. Returns 0, or -1 for an unknown name.
extern "C" int banded_emulator_launch(const char* name, unsigned grid, unsigned block, void** params) {
    for (const Entry& e : KERNELS)
        if (std::strcmp(e.name, name) == 0) {
            e.launch(grid, block, params);
            return 0;
        }
    return -1;
}
