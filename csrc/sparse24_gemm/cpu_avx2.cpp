#define BIGACCEL_ISA_LEVEL BIGACCEL_ISA_AVX2
#define BIGACCEL_ISA_NS avx2
#include "common/isa.h"
#include "sparse24_gemm/cpu_kernel.h"
BIGACCEL_ISA_POP
