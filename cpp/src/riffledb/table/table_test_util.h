// Test helpers shared by the table component's tests.
#pragma once

#include <arrow/api.h>
#include <arrow/json/from_string.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "riffledb/table/table.h"

namespace riffledb::testing {

/// A fresh empty directory under the system temp dir, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("riffledb-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

/// A directory store that counts the fragments it opens.
class CountingStore : public DirectoryStore {
 public:
  using DirectoryStore::DirectoryStore;
  arrow::Result<std::shared_ptr<const FragmentData>> OpenFragment(
      const format::FragmentInfo& info,
      const std::shared_ptr<arrow::Schema>& schema) override {
    ++opened;
    return DirectoryStore::OpenFragment(info, schema);
  }
  std::atomic<int> opened{0};
};

/// {id int64, label int32}: id = start..start+n-1, label = id % 10.
inline std::shared_ptr<arrow::RecordBatch> IdBatch(int64_t start, int64_t n) {
  arrow::Int64Builder ids;
  arrow::Int32Builder labels;
  for (int64_t i = start; i < start + n; ++i) {
    (void)ids.Append(i);
    (void)labels.Append(static_cast<int32_t>(i % 10));
  }
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64()), arrow::field("label", arrow::int32())});
  return arrow::RecordBatch::Make(
      schema, n, {ids.Finish().ValueOrDie(), labels.Finish().ValueOrDie()});
}

inline std::shared_ptr<arrow::RecordBatchReader> ReaderOf(
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches,
    std::shared_ptr<arrow::Schema> schema = nullptr) {
  if (schema == nullptr) schema = batches.at(0)->schema();
  return arrow::RecordBatchReader::Make(std::move(batches), schema).ValueOrDie();
}

/// The int64 column `name` of a batch as a vector.
inline std::vector<int64_t> Int64Column(const arrow::RecordBatch& batch,
                                        const std::string& name) {
  auto column = std::static_pointer_cast<arrow::Int64Array>(batch.GetColumnByName(name));
  return std::vector<int64_t>(column->raw_values(),
                              column->raw_values() + column->length());
}

/// Deletes the rows where `sql` is true, bound as the bindings bind it (to the handle's
/// version).
inline arrow::Result<uint64_t> DeleteWhere(Table& table, std::string_view sql) {
  ARROW_ASSIGN_OR_RAISE(auto snapshot, table.snapshot());
  ARROW_ASSIGN_OR_RAISE(auto filter, Filter::Make(snapshot->schema(), sql));
  return table.Delete(*filter);
}

/// `sql` bound to `snapshot`'s schema; aborts the test binary on a bind error.
inline std::shared_ptr<const Filter> FilterOf(const Snapshot& snapshot,
                                              std::string_view sql) {
  return Filter::Make(snapshot.schema(), sql).ValueOrDie();
}

/// Take options returning `columns` (plain names; empty: all), then `_rowid` if asked.
inline TakeOptions TakeColumns(const Snapshot& snapshot, std::vector<std::string> columns,
                               bool with_row_id = false) {
  return {Projection::Columns(snapshot.schema(), columns, with_row_id).ValueOrDie()};
}

inline std::vector<uint64_t> UInt64Column(const arrow::RecordBatch& batch,
                                          const std::string& name) {
  auto column = std::static_pointer_cast<arrow::UInt64Array>(batch.GetColumnByName(name));
  return std::vector<uint64_t>(column->raw_values(),
                               column->raw_values() + column->length());
}

/// The `id` column of every row of `snapshot` (or of `table`'s current snapshot), in scan
/// order; empty for no rows.
inline std::vector<int64_t> Ids(const Snapshot& snapshot) {
  auto rows = snapshot.Scan({}).ValueOrDie()->ToTable().ValueOrDie();
  if (rows->num_rows() == 0) return {};
  return Int64Column(*rows->CombineChunksToBatch().ValueOrDie(), "id");
}
inline std::vector<int64_t> Ids(const Table& table) {
  return Ids(*table.snapshot().ValueOrDie());
}

/// begin, begin + 1, ..., end - 1.
inline std::vector<int64_t> Range(int64_t begin, int64_t end) {
  std::vector<int64_t> out;
  for (int64_t i = begin; i < end; ++i) out.push_back(i);
  return out;
}

inline constexpr int64_t kDayMs = int64_t{24} * 3600 * 1000;

/// Milliseconds since the Unix epoch (the clock of commit timestamps and file times).
inline int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace riffledb::testing
