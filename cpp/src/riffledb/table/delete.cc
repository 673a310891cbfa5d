#include <algorithm>
#include <iterator>

#include "riffledb/table/delete_internal.h"

namespace riffledb::internal {

arrow::Result<DeletionPlan> PlanDeletion(const Snapshot& snapshot, const Filter& filter) {
  // A scan of the matching row ids reads only the filter's columns.
  ScanOptions options;
  ARROW_ASSIGN_OR_RAISE(options.filter, filter.Rebind(snapshot.schema()));
  const std::vector<std::string> row_id{kRowIdColumn};
  ARROW_ASSIGN_OR_RAISE(options.projection,
                        Projection::Columns(snapshot.schema(), row_id));
  ARROW_ASSIGN_OR_RAISE(auto reader, snapshot.Scan(options));

  const auto& fragments = snapshot.manifest().fragments;
  std::vector<std::vector<uint32_t>> matched(fragments.size());
  DeletionPlan plan;
  size_t f = 0;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (batch == nullptr) break;
    const auto& ids = static_cast<const arrow::UInt64Array&>(*batch->column(0));
    for (int64_t i = 0; i < ids.length(); ++i) {
      const auto fragment_id = static_cast<uint32_t>(ids.Value(i) >> 32);
      while (fragments[f].id != fragment_id) ++f;  // scan order follows fragment order
      matched[f].push_back(static_cast<uint32_t>(ids.Value(i)));
      ++plan.matched;
    }
  }
  plan.deleted.resize(fragments.size());
  for (size_t i = 0; i < fragments.size(); ++i) {
    if (matched[i].empty()) continue;
    auto merged = std::make_shared<std::vector<uint32_t>>();
    ARROW_ASSIGN_OR_RAISE(auto deleted, snapshot.DeletedRows(i));
    const auto* old = deleted.get();
    merged->reserve(matched[i].size() + (old ? old->size() : 0));
    std::merge(matched[i].begin(), matched[i].end(),
               old ? old->begin() : matched[i].end(), old ? old->end() : matched[i].end(),
               std::back_inserter(*merged));
    plan.deleted[i] = std::move(merged);
  }
  return plan;
}

}  // namespace riffledb::internal
