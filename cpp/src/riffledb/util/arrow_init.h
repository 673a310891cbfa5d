#pragma once

#include <arrow/status.h>

namespace riffledb {

/// Registers Arrow's compute kernels (split into libarrow_compute since Arrow 21).
/// Idempotent and thread-safe; every entry point that evaluates expressions calls it.
arrow::Status EnsureArrowComputeInitialized();

}  // namespace riffledb
