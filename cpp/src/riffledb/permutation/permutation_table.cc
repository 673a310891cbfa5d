#include "riffledb/permutation/permutation_table.h"

#include <arrow/array/concatenate.h>
#include <arrow/buffer.h>
#include <arrow/compute/cast.h>
#include <xxhash.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>

#include "riffledb/permutation/shuffle_internal.h"
#include "riffledb/permutation/split_internal.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb {

namespace {

namespace cp = arrow::compute;

// The key of the PermutationTable cached on a snapshot (Snapshot::Derived).
constexpr char kDerivedKey = 0;

std::shared_ptr<arrow::UInt64Array> UInt64ArrayOf(std::shared_ptr<arrow::Buffer> buffer,
                                                  int64_t length) {
  return std::static_pointer_cast<arrow::UInt64Array>(arrow::MakeArray(
      arrow::ArrayData::Make(arrow::uint64(), length, {nullptr, std::move(buffer)}, 0)));
}

// One integer column of a permutation table as a single uint64 array without nulls.
arrow::Result<std::shared_ptr<arrow::UInt64Array>> UInt64Column(const arrow::Table& table,
                                                                const char* name) {
  const int index = table.schema()->GetFieldIndex(name);
  if (index < 0) {
    return arrow::Status::Invalid("Permutation table must contain a column named ", name);
  }
  const auto& type = table.schema()->field(index)->type();
  if (!arrow::is_integer(type->id())) {
    return arrow::Status::Invalid("Permutation table column ", name,
                                  " must be an integer column, got ", type->ToString());
  }
  const auto& chunks = table.column(index)->chunks();
  std::shared_ptr<arrow::Array> values;
  if (chunks.empty()) {
    ARROW_ASSIGN_OR_RAISE(values, arrow::MakeEmptyArray(type));
  } else if (chunks.size() == 1) {
    values = chunks[0];
  } else {
    ARROW_ASSIGN_OR_RAISE(values, arrow::Concatenate(chunks));
  }
  if (values->null_count() > 0) {
    return arrow::Status::Invalid("Permutation table column ", name,
                                  " must not contain nulls");
  }
  if (type->id() != arrow::Type::UINT64) {
    auto cast = cp::Cast(*values, arrow::uint64());  // safe: negative values fail
    if (!cast.ok()) {
      return arrow::Status::Invalid("Permutation table column ", name,
                                    " holds a negative value: ", cast.status().message());
    }
    values = std::move(cast).ValueUnsafe();
  }
  return std::static_pointer_cast<arrow::UInt64Array>(values);
}

arrow::Result<std::optional<std::vector<std::string>>> ParseSplitNames(
    const arrow::KeyValueMetadata* metadata) {
  if (metadata == nullptr) return std::nullopt;
  const int index = metadata->FindKey(kSplitNamesMetadataKey);
  if (index < 0) return std::nullopt;
  const std::string& text = metadata->value(index);
  nlohmann::json parsed =
      nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return arrow::Status::Invalid(
        "The permutation table's split_names metadata is not valid JSON: ", text);
  }
  std::vector<std::string> names;
  bool strings = parsed.is_array();
  if (strings) {
    for (const auto& name : parsed) {
      if (!name.is_string()) {
        strings = false;
        break;
      }
      names.push_back(name.get<std::string>());
    }
  }
  if (!strings) {
    return arrow::Status::Invalid(
        "The permutation table's split_names metadata must be a JSON list of strings, "
        "got ",
        text);
  }
  for (size_t i = 0; i < names.size(); ++i) {
    if (std::find(names.begin(), names.begin() + i, names[i]) != names.begin() + i) {
      return arrow::Status::Invalid(
          "The permutation table's split names are not unique: `", names[i],
          "` appears more than once");
    }
  }
  return names;
}

std::string MetadataValue(const arrow::KeyValueMetadata* metadata, const char* key) {
  if (metadata == nullptr) return "";
  const int index = metadata->FindKey(key);
  return index < 0 ? "" : metadata->value(index);
}

// The builder's provenance carried by `metadata`, or an empty one unless every recorded
// split digest equals `table`'s (the table was edited, or was not made by the builder).
PermutationProvenance ProvenanceOf(const arrow::KeyValueMetadata* metadata,
                                   const PermutationTable& table) {
  PermutationProvenance provenance;
  const std::string recipe = MetadataValue(metadata, kRecipeMetadataKey);
  const std::string version = MetadataValue(metadata, kBaseVersionMetadataKey);
  const std::string digests = MetadataValue(metadata, kSplitDigestsMetadataKey);
  if (recipe.empty() || version.empty() || digests.empty()) return provenance;
  auto parsed = nlohmann::json::parse(digests, nullptr, /*allow_exceptions=*/false);
  auto spec = nlohmann::json::parse(recipe, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object() || parsed.size() != table.split_ids().size() ||
      !spec.is_object() || !spec.contains("base") || !spec["base"].is_string()) {
    return provenance;
  }
  for (uint64_t split : table.split_ids()) {
    auto it = parsed.find(std::to_string(split));
    if (it == parsed.end() || !it->is_string() ||
        it->get<std::string>() != table.Digest(split)) {
      return provenance;
    }
  }
  uint64_t base_version = 0;
  if (std::sscanf(version.c_str(), "%lu", &base_version) != 1) return provenance;
  provenance.recipe = recipe;
  provenance.base_location = spec["base"].get<std::string>();
  provenance.base_version = base_version;
  return provenance;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// RowIdDigest

RowIdDigest::RowIdDigest() : state_(XXH3_createState()) {
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}

RowIdDigest::~RowIdDigest() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void RowIdDigest::Update(std::span<const uint64_t> ids) {
  static_assert(std::endian::native == std::endian::little,
                "RowIdDigest hashes the ids' little-endian bytes");
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), ids.data(), ids.size_bytes());
}

std::string RowIdDigest::Hex() const {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(
                    XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_))));
  return hex;
}

// ---------------------------------------------------------------------------------------
// PermutationTable

arrow::Result<std::shared_ptr<const PermutationTable>> PermutationTable::Make(
    std::shared_ptr<const arrow::UInt64Array> row_ids, std::vector<uint64_t> split_ids,
    std::vector<int64_t> starts, std::optional<std::vector<std::string>> split_names,
    PermutationProvenance provenance) {
  if (row_ids == nullptr || starts.size() != split_ids.size() + 1 || starts[0] != 0 ||
      starts.back() != row_ids->length()) {
    return arrow::Status::Invalid("PermutationTable::Make: inconsistent split starts");
  }
  std::shared_ptr<PermutationTable> table(new PermutationTable());
  table->row_ids_ = std::move(row_ids);
  table->starts_.push_back(0);
  for (size_t g = 0; g < split_ids.size(); ++g) {
    if (g > 0 && split_ids[g] <= split_ids[g - 1]) {
      return arrow::Status::Invalid("PermutationTable::Make: split ids not ascending");
    }
    if (starts[g + 1] < starts[g]) {
      return arrow::Status::Invalid("PermutationTable::Make: split starts descending");
    }
    if (starts[g + 1] == starts[g]) continue;
    table->split_ids_.push_back(split_ids[g]);
    table->starts_.push_back(starts[g + 1]);
    RowIdDigest digest;
    digest.Update(std::span<const uint64_t>(table->row_ids_->raw_values() + starts[g],
                                            starts[g + 1] - starts[g]));
    table->digests_.push_back(digest.Hex());
  }
  table->split_names_ = std::move(split_names);
  table->provenance_ = std::move(provenance);
  return table;
}

arrow::Result<std::shared_ptr<const PermutationTable>> PermutationTable::FromArrow(
    const arrow::Table& table) {
  ARROW_ASSIGN_OR_RAISE(auto row_ids, UInt64Column(table, kPermutationRowIdColumn));
  ARROW_ASSIGN_OR_RAISE(auto splits, UInt64Column(table, kPermutationSplitColumn));
  const arrow::KeyValueMetadata* metadata = table.schema()->metadata().get();
  ARROW_ASSIGN_OR_RAISE(auto names, ParseSplitNames(metadata));

  const int64_t n = row_ids->length();
  const uint64_t* split = splits->raw_values();
  std::vector<uint64_t> split_ids;
  std::vector<int64_t> starts{0};
  const bool grouped = std::is_sorted(split, split + n);
  std::shared_ptr<const arrow::UInt64Array> ids = row_ids;
  if (grouped) {
    for (int64_t i = 0; i < n; ++i) {
      if (i == 0 || split[i] != split[i - 1]) {
        if (i > 0) starts.push_back(i);
        split_ids.push_back(split[i]);
      }
    }
    if (n > 0) starts.push_back(n);
  } else {
    // A stable grouping by split id: a counting sort over the distinct ids.
    std::vector<uint64_t> distinct(split, split + n);
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    std::vector<int64_t> next(distinct.size() + 1, 0);
    std::vector<uint32_t> group(n);
    for (int64_t i = 0; i < n; ++i) {
      group[i] = static_cast<uint32_t>(
          std::lower_bound(distinct.begin(), distinct.end(), split[i]) -
          distinct.begin());
      ++next[group[i] + 1];
    }
    std::partial_sum(next.begin(), next.end(), next.begin());
    starts.assign(next.begin() + 1, next.end());
    starts.insert(starts.begin(), 0);
    ARROW_ASSIGN_OR_RAISE(
        std::shared_ptr<arrow::Buffer> buffer,
        arrow::AllocateBuffer(n * static_cast<int64_t>(sizeof(uint64_t))));
    auto* out = buffer->mutable_data_as<uint64_t>();
    for (int64_t i = 0; i < n; ++i) out[next[group[i]]++] = row_ids->Value(i);
    ids = UInt64ArrayOf(std::move(buffer), n);
    split_ids = std::move(distinct);
  }
  ARROW_ASSIGN_OR_RAISE(auto result, Make(std::move(ids), std::move(split_ids),
                                          std::move(starts), std::move(names), {}));
  auto mutable_result = std::const_pointer_cast<PermutationTable>(result);
  mutable_result->provenance_ = ProvenanceOf(metadata, *result);
  return result;
}

arrow::Result<std::shared_ptr<const PermutationTable>> PermutationTable::Open(
    const Snapshot& snapshot) {
  if (auto cached = snapshot.Derived(&kDerivedKey)) {
    return std::static_pointer_cast<const PermutationTable>(cached);
  }
  // Scan only the two columns the table needs (a permutation table may carry others).
  const auto& schema = *snapshot.schema();
  for (const char* name : {kPermutationRowIdColumn, kPermutationSplitColumn}) {
    if (schema.GetFieldIndex(name) < 0) {
      return arrow::Status::Invalid("Permutation table must contain a column named ",
                                    name);
    }
  }
  ScanOptions options;
  const std::string columns[] = {kPermutationRowIdColumn, kPermutationSplitColumn};
  ARROW_ASSIGN_OR_RAISE(options.projection,
                        Projection::Columns(snapshot.schema(), columns));
  ARROW_ASSIGN_OR_RAISE(auto scan, snapshot.Scan(options));
  ARROW_ASSIGN_OR_RAISE(auto table, scan->ToTable());
  table = table->ReplaceSchemaMetadata(schema.metadata());
  ARROW_ASSIGN_OR_RAISE(auto result, FromArrow(*table));
  Attach(snapshot, result);
  return result;
}

void PermutationTable::Attach(const Snapshot& snapshot,
                              std::shared_ptr<const PermutationTable> table) {
  snapshot.SetDerived(&kDerivedKey, std::move(table));
}

arrow::Result<PermutationTable::Split> PermutationTable::GetSplit(uint64_t split) const {
  auto it = std::lower_bound(split_ids_.begin(), split_ids_.end(), split);
  if (it == split_ids_.end() || *it != split) {
    return arrow::Status::Invalid(kNoRowsMessage);
  }
  const size_t g = static_cast<size_t>(it - split_ids_.begin());
  return Split{split, std::static_pointer_cast<const arrow::UInt64Array>(
                          row_ids_->Slice(starts_[g], starts_[g + 1] - starts_[g]))};
}

arrow::Result<std::shared_ptr<const PermutationTable>> PermutationTable::OnlySplit(
    uint64_t split) const {
  ARROW_ASSIGN_OR_RAISE(Split s, GetSplit(split));
  std::shared_ptr<PermutationTable> table(new PermutationTable());
  table->row_ids_ = s.row_ids;
  table->split_ids_ = {split};
  table->starts_ = {0, s.row_ids->length()};
  table->digests_ = {Digest(split)};
  table->split_names_ = split_names_;
  table->provenance_ = provenance_;
  return table;
}

std::string PermutationTable::Digest(uint64_t split) const {
  auto it = std::lower_bound(split_ids_.begin(), split_ids_.end(), split);
  if (it == split_ids_.end() || *it != split) return "";
  return digests_[it - split_ids_.begin()];
}

std::shared_ptr<const arrow::KeyValueMetadata> PermutationTable::Metadata() const {
  std::vector<std::string> keys, values;
  if (split_names_) {
    keys.push_back(kSplitNamesMetadataKey);
    values.push_back(internal::SplitNamesJson(*split_names_));
  }
  if (provenance_.base_version) {
    keys.push_back(kBaseVersionMetadataKey);
    values.push_back(std::to_string(*provenance_.base_version));
    nlohmann::ordered_json digests = nlohmann::ordered_json::object();
    for (size_t g = 0; g < split_ids_.size(); ++g) {
      digests[std::to_string(split_ids_[g])] = digests_[g];
    }
    keys.push_back(kSplitDigestsMetadataKey);
    values.push_back(digests.dump());
  }
  if (!provenance_.recipe.empty()) {
    keys.push_back(kRecipeMetadataKey);
    values.push_back(provenance_.recipe);
  }
  if (keys.empty()) return nullptr;
  return arrow::key_value_metadata(std::move(keys), std::move(values));
}

arrow::Result<std::shared_ptr<arrow::Table>> PermutationTable::ToArrow() const {
  const int64_t n = num_rows();
  // Split 0's pages are never written, so they cost nothing (see MapZeroed).
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::MutableBuffer> buffer,
                        internal::MapZeroed(n * static_cast<int64_t>(sizeof(uint64_t))));
  auto* out = buffer->mutable_data_as<uint64_t>();
  // Only splits other than 0 are written, in parallel pieces: the first touch of the
  // pages is most of the cost.
  constexpr int64_t kPiece = int64_t{1} << 20;
  ARROW_RETURN_NOT_OK(
      ThreadPool::Default()->ParallelFor((n + kPiece - 1) / kPiece, [&](int64_t p) {
        const int64_t begin = p * kPiece;
        const int64_t end = std::min(n, begin + kPiece);
        size_t g =
            static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), begin) -
                                starts_.begin() - 1);
        for (int64_t i = begin; i < end; ++g) {
          const int64_t stop = std::min(end, starts_[g + 1]);
          if (split_ids_[g] != 0) std::fill(out + i, out + stop, split_ids_[g]);
          i = stop;
        }
        return arrow::Status::OK();
      }));
  auto schema =
      arrow::schema({arrow::field(kPermutationRowIdColumn, arrow::uint64(), false),
                     arrow::field(kPermutationSplitColumn, arrow::uint64(), false)},
                    Metadata());
  std::shared_ptr<arrow::Array> ids =
      std::const_pointer_cast<arrow::UInt64Array>(row_ids_);
  return arrow::Table::Make(std::move(schema),
                            {std::move(ids), UInt64ArrayOf(std::move(buffer), n)}, n);
}

}  // namespace riffledb
