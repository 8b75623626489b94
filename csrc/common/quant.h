// Constants of bigaccel's quantized formats, shared by CPU and CUDA code.
// bigaccel/reference.py is the definition; tests hold every backend to it.
#pragma once

namespace bigaccel {

// Rows whose max |x| is below this are scaled as if it were this, so that an
// all-zero row quantizes to zeros with a finite, positive scale.
constexpr float kInt8MinAmax = 1e-12f;
constexpr float kInt8Max = 127.0f;

}  // namespace bigaccel
