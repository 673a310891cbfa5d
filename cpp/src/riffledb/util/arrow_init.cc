#include "riffledb/util/arrow_init.h"

#include <arrow/compute/initialize.h>

namespace riffledb {

arrow::Status EnsureArrowComputeInitialized() {
  static const arrow::Status status = arrow::compute::Initialize();
  return status;
}

}  // namespace riffledb
