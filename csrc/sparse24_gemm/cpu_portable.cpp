#define BIGACCEL_ISA_LEVEL BIGACCEL_ISA_PORTABLE
#define BIGACCEL_ISA_NS portable
#include "common/isa.h"
#include "sparse24_gemm/cpu_kernel.h"
BIGACCEL_ISA_POP
