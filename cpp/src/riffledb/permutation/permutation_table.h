// A permutation table in memory: base-table row ids grouped by split (DESIGN.md decision
// 7).
#pragma once

#include <arrow/array.h>
#include <arrow/result.h>
#include <arrow/table.h>
#include <arrow/util/key_value_metadata.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "riffledb/table/snapshot.h"

namespace riffledb {

/// Column names of a permutation table in Arrow form.
inline constexpr char kPermutationRowIdColumn[] = "row_id";
inline constexpr char kPermutationSplitColumn[] = "split_id";

/// Schema metadata keys of a permutation table in Arrow form. The one definition: Python
/// reads them from the extension (`_riffledb.PERMUTATION_METADATA_KEYS`).
///  - split_names: the split names, a compact JSON array of distinct strings (LanceDB's).
///  - riffledb:base_version: the base-table version the builder read (decimal).
///  - riffledb:split_digests: {split id: RowIdDigest of its row ids}, a compact JSON
///  object.
///  - riffledb:recipe: the builder calls that rebuild the table (PermutationBuilder's
///    Recipe()), recorded when the base table can be opened again by its location.
inline constexpr char kSplitNamesMetadataKey[] = "split_names";
inline constexpr char kBaseVersionMetadataKey[] = "riffledb:base_version";
inline constexpr char kSplitDigestsMetadataKey[] = "riffledb:split_digests";
inline constexpr char kRecipeMetadataKey[] = "riffledb:recipe";

/// The message of the Invalid status for a split (or identity table) without rows.
inline constexpr char kNoRowsMessage[] =
    "Invalid input, No rows found in the permutation table for the given split";

/// The digest of a sequence of row ids: XXH3-64 of their little-endian uint64 bytes, as
/// 16 lowercase hex digits. Fed in pieces, it equals the digest of the concatenation.
class RowIdDigest {
 public:
  RowIdDigest();
  ~RowIdDigest();
  RowIdDigest(const RowIdDigest&) = delete;
  RowIdDigest& operator=(const RowIdDigest&) = delete;

  void Update(std::span<const uint64_t> ids);
  std::string Hex() const;

 private:
  void* state_;  // XXH3_state_t
};

/// How a permutation table came to be, when the builder made it: what a reader needs to
/// prove that a table still holds what a build produced, so that a pickled permutation
/// can travel as the build's recipe instead of its row ids.
struct PermutationProvenance {
  /// The builder's recipe (JSON); empty when the base table cannot be reopened by
  /// location (memory://) or the table did not come from the builder.
  std::string recipe;
  /// Location of the base table's store (Store::location()) and the version built from.
  std::string base_location;
  std::optional<uint64_t> base_version;
};

/// Row ids of a base table grouped by split, in ascending split id; within a split the
/// stored order is the read order. Split ids need not be contiguous (calculated splits);
/// a split without rows is simply absent. Immutable and thread-safe; Split() is O(log
/// number of splits) and shares the row ids (no copy).
class PermutationTable {
 public:
  /// One split's rows: its id and its row ids in read order (a slice of the table's).
  struct Split {
    uint64_t id = 0;
    std::shared_ptr<const arrow::UInt64Array> row_ids;
  };

  /// From already grouped row ids: split `split_ids[g]` holds rows
  /// [starts[g], starts[g + 1]) of `row_ids`; `split_ids` strictly ascending, `starts`
  /// one longer, starting at 0 and ending at row_ids->length(). Empty groups are dropped.
  /// Digests of every split are computed here.
  static arrow::Result<std::shared_ptr<const PermutationTable>> Make(
      std::shared_ptr<const arrow::UInt64Array> row_ids, std::vector<uint64_t> split_ids,
      std::vector<int64_t> starts, std::optional<std::vector<std::string>> split_names,
      PermutationProvenance provenance);

  /// From an Arrow table with integer `row_id` and `split_id` columns (other columns are
  /// ignored), grouped by split id stably (one pass when already grouped, which is what
  /// the builder writes). Metadata: split names, and the builder's provenance when the
  /// table carries it.
  ///
  /// Errors (Invalid): a missing column ("Permutation table must contain a column named
  /// row_id"), a non-integer column, nulls, negative values; split_names metadata that is
  /// not a JSON list of distinct strings.
  static arrow::Result<std::shared_ptr<const PermutationTable>> FromArrow(
      const arrow::Table& table);

  /// FromArrow over every row of `snapshot`, computed once per snapshot and then shared
  /// (cached on the snapshot): opening splits of the same table version again is O(1).
  static arrow::Result<std::shared_ptr<const PermutationTable>> Open(
      const Snapshot& snapshot);

  /// Caches `table` as what Open(snapshot) returns: for a snapshot made from this table's
  /// ToArrow(), so that it is not grouped again.
  static void Attach(const Snapshot& snapshot,
                     std::shared_ptr<const PermutationTable> table);

  /// A table holding only split `split` of this one (same split id, names and
  /// provenance). Invalid (kNoRowsMessage) if the split has no rows.
  arrow::Result<std::shared_ptr<const PermutationTable>> OnlySplit(uint64_t split) const;

  /// The rows of split `split`; Invalid (kNoRowsMessage) if it has none.
  arrow::Result<Split> GetSplit(uint64_t split) const;

  /// The Arrow form: `row_id` and `split_id` (uint64, non-null) with the metadata keys
  /// above. The row ids are shared; split_id is filled (8 bytes a row).
  arrow::Result<std::shared_ptr<arrow::Table>> ToArrow() const;

  int64_t num_rows() const { return row_ids_->length(); }
  const std::vector<uint64_t>& split_ids() const { return split_ids_; }
  const std::optional<std::vector<std::string>>& split_names() const {
    return split_names_;
  }
  const PermutationProvenance& provenance() const { return provenance_; }
  /// The digest of split `split`'s row ids as the table holds them ("" if no such split).
  std::string Digest(uint64_t split) const;

 private:
  PermutationTable() = default;
  std::shared_ptr<const arrow::KeyValueMetadata> Metadata() const;

  // Constant after construction.
  std::shared_ptr<const arrow::UInt64Array> row_ids_;
  std::vector<uint64_t> split_ids_;  // ascending, each with rows
  std::vector<int64_t> starts_;      // size split_ids_.size() + 1
  std::vector<std::string> digests_;
  std::optional<std::vector<std::string>> split_names_;
  PermutationProvenance provenance_;
};

}  // namespace riffledb
