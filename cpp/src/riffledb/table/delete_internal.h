// Delete planning: which rows a delete removes from each fragment. Private to table/.
#pragma once

#include <arrow/result.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "riffledb/expr/projection.h"
#include "riffledb/table/snapshot.h"

namespace riffledb::internal {

/// The rows a delete leaves deleted in each fragment of `snapshot`.
struct DeletionPlan {
  /// One entry per fragment of snapshot.manifest(): its sorted deleted rows after the
  /// delete (the old ones and the matched ones), or null if the filter matched none.
  std::vector<std::shared_ptr<std::vector<uint32_t>>> deleted;
  /// Rows the filter matched.
  int64_t matched = 0;
};

/// Plans deleting the rows of `snapshot` where `filter` (bound to its schema) is true.
arrow::Result<DeletionPlan> PlanDeletion(const Snapshot& snapshot, const Filter& filter);

}  // namespace riffledb::internal
