#include "riffledb/permutation/builder.h"

#include <arrow/array.h>
#include <arrow/buffer.h>
#include <arrow/util/key_value_metadata.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "riffledb/permutation/shuffle_internal.h"
#include "riffledb/permutation/split_internal.h"
#include "riffledb/util/random.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb {

// ---------------------------------------------------------------------------------------
// SplitSizes

SplitSizes SplitSizes::Ratios(std::vector<double> ratios) {
  SplitSizes sizes;
  sizes.kind = Kind::kRatios;
  sizes.ratios = std::move(ratios);
  return sizes;
}

SplitSizes SplitSizes::Counts(std::vector<uint64_t> counts) {
  SplitSizes sizes;
  sizes.kind = Kind::kCounts;
  sizes.counts = std::move(counts);
  return sizes;
}

SplitSizes SplitSizes::Fixed(uint64_t num_splits) {
  SplitSizes sizes;
  sizes.kind = Kind::kFixed;
  sizes.fixed = num_splits;
  return sizes;
}

uint64_t SplitSizes::num_splits() const {
  switch (kind) {
    case Kind::kRatios:
      return ratios.size();
    case Kind::kCounts:
      return counts.size();
    case Kind::kFixed:
      return fixed;
  }
  return 0;
}

arrow::Result<std::vector<uint64_t>> SplitSizes::ToCounts(uint64_t num_rows) const {
  const double n = static_cast<double>(num_rows);
  switch (kind) {
    case Kind::kRatios: {
      double sum = 0;
      for (double p : ratios) {
        if (!(p >= 0.0 && p <= 1.0)) {  // also rejects NaN
          return arrow::Status::Invalid(
              "Invalid input, Split percentages must be between 0.0 and 1.0");
        }
        if (p * n < 1.0) {
          return arrow::Status::Invalid("Invalid input, One of the splits has ",
                                        internal::FormatFloatLikeRust(p * 100.0), "% of ",
                                        num_rows, " rows which rounds to 0 rows");
        }
        sum += p;
      }
      if (sum > 1.0) {
        return arrow::Status::Invalid(
            "Invalid input, Split percentages must sum to 1.0 or less");
      }
      std::vector<uint64_t> out;
      uint64_t total = 0;
      for (double p : ratios) {
        out.push_back(static_cast<uint64_t>(std::round(p * n)));  // half away from zero
        total += out.back();
      }
      if (out.empty()) return out;
      for (size_t i = 0; total > num_rows; i = (i + 1) % out.size()) {
        if (out[i] > 0) {
          --out[i];
          --total;
        }
      }
      if (std::abs(n - sum * n) < 0.5) {
        for (size_t i = 0; total < num_rows; i = (i + 1) % out.size()) {
          ++out[i];
          ++total;
        }
      }
      return out;
    }
    case Kind::kCounts: {
      unsigned __int128 sum = 0;
      for (uint64_t c : counts) sum += c;
      if (sum > num_rows) {
        std::string digits;
        for (unsigned __int128 v = sum; v > 0; v /= 10) {
          digits.insert(digits.begin(),
                        static_cast<char>('0' + static_cast<int>(v % 10)));
        }
        return arrow::Status::Invalid("Invalid input, Split counts specified ", digits,
                                      " rows but only ", num_rows, " are available");
      }
      if (std::find(counts.begin(), counts.end(), uint64_t{0}) != counts.end()) {
        return arrow::Status::Invalid(
            "Invalid input, Split counts must be greater than 0");
      }
      return counts;
    }
    case Kind::kFixed: {
      if (fixed == 0) {
        return arrow::Status::Invalid(
            "Invalid input, Split fixed config specified 0 splits; it must be at least "
            "1");
      }
      if (fixed > num_rows || num_rows / fixed == 0) {
        return arrow::Status::Invalid(
            "Invalid input, Split fixed config specified ", fixed, " splits but only ",
            num_rows, " rows are available.  Must have at least 1 row per split.");
      }
      return std::vector<uint64_t>(fixed, num_rows / fixed);
    }
  }
  return arrow::Status::Invalid("Unknown split size kind");
}

// ---------------------------------------------------------------------------------------
// Configuration

PermutationBuilder::PermutationBuilder(std::shared_ptr<const Snapshot> base)
    : base_(std::move(base)) {}

PermutationBuilder& PermutationBuilder::Filter(std::string sql) {
  filter_ = std::move(sql);
  return *this;
}

PermutationBuilder& PermutationBuilder::SplitRandom(
    SplitSizes sizes, std::optional<uint64_t> seed, std::optional<uint64_t> clump_size,
    std::optional<std::vector<std::string>> split_names) {
  split_kind_ = SplitKind::kRandom;
  sizes_ = std::move(sizes);
  split_shuffle_ = {seed ? *seed : SeedFromEntropy(), clump_size};
  split_names_ = std::move(split_names);
  return *this;
}

PermutationBuilder& PermutationBuilder::SplitHash(
    std::vector<std::string> columns, std::vector<uint64_t> split_weights,
    uint64_t discard_weight, std::optional<std::vector<std::string>> split_names) {
  split_kind_ = SplitKind::kHash;
  hash_columns_ = std::move(columns);
  hash_weights_ = std::move(split_weights);
  hash_discard_ = discard_weight;
  split_names_ = std::move(split_names);
  return *this;
}

PermutationBuilder& PermutationBuilder::SplitSequential(
    SplitSizes sizes, std::optional<std::vector<std::string>> split_names) {
  split_kind_ = SplitKind::kSequential;
  sizes_ = std::move(sizes);
  split_names_ = std::move(split_names);
  return *this;
}

PermutationBuilder& PermutationBuilder::SplitCalculated(
    std::string sql, std::optional<std::vector<std::string>> split_names) {
  split_kind_ = SplitKind::kCalculated;
  calculation_ = std::move(sql);
  split_names_ = std::move(split_names);
  return *this;
}

PermutationBuilder& PermutationBuilder::Shuffle(std::optional<uint64_t> seed,
                                                std::optional<uint64_t> clump_size) {
  shuffle_ = ShuffleOptions{seed ? *seed : SeedFromEntropy(), clump_size};
  return *this;
}

// ---------------------------------------------------------------------------------------
// Recipe

namespace {

constexpr int kRecipeFormat = 2;

nlohmann::ordered_json SizesJson(const SplitSizes& sizes) {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  switch (sizes.kind) {
    case SplitSizes::Kind::kRatios:
      out["ratios"] = sizes.ratios;
      break;
    case SplitSizes::Kind::kCounts:
      out["counts"] = sizes.counts;
      break;
    case SplitSizes::Kind::kFixed:
      out["fixed"] = sizes.fixed;
      break;
  }
  return out;
}

std::optional<SplitSizes> SizesFromJson(const nlohmann::json& split) {
  if (split.contains("ratios")) {
    return SplitSizes::Ratios(split.at("ratios").get<std::vector<double>>());
  }
  if (split.contains("counts")) {
    return SplitSizes::Counts(split.at("counts").get<std::vector<uint64_t>>());
  }
  if (split.contains("fixed"))
    return SplitSizes::Fixed(split.at("fixed").get<uint64_t>());
  return std::nullopt;
}

template <typename T>
std::optional<T> OptionalOf(const nlohmann::json& object, const char* key) {
  if (!object.contains(key) || object.at(key).is_null()) return std::nullopt;
  return object.at(key).get<T>();
}

}  // namespace

std::string PermutationBuilder::Recipe() const {
  nlohmann::ordered_json recipe = nlohmann::ordered_json::object();
  recipe["format"] = kRecipeFormat;
  recipe["base"] = base_ == nullptr ? "" : base_->store()->location();
  if (filter_) recipe["filter"] = *filter_;
  nlohmann::ordered_json split = nlohmann::ordered_json::object();
  switch (split_kind_) {
    case SplitKind::kNone:
      break;
    case SplitKind::kRandom:
      split = SizesJson(sizes_);
      split["kind"] = "random";
      split["seed"] = split_shuffle_.seed;
      if (split_shuffle_.clump_size) split["clump_size"] = *split_shuffle_.clump_size;
      break;
    case SplitKind::kSequential:
      split = SizesJson(sizes_);
      split["kind"] = "sequential";
      break;
    case SplitKind::kHash:
      split["kind"] = "hash";
      split["columns"] = hash_columns_;
      split["weights"] = hash_weights_;
      split["discard"] = hash_discard_;
      break;
    case SplitKind::kCalculated:
      split["kind"] = "calculated";
      split["calculation"] = calculation_;
      break;
  }
  if (split_kind_ != SplitKind::kNone) {
    if (split_names_) split["names"] = *split_names_;
    recipe["split"] = std::move(split);
  }
  if (shuffle_) {
    nlohmann::ordered_json shuffle = nlohmann::ordered_json::object();
    shuffle["seed"] = shuffle_->seed;
    if (shuffle_->clump_size) shuffle["clump_size"] = *shuffle_->clump_size;
    recipe["shuffle"] = std::move(shuffle);
  }
  return recipe.dump();
}

arrow::Result<PermutationBuilder> PermutationBuilder::FromRecipe(
    std::shared_ptr<const Snapshot> base, const std::string& recipe) {
  const auto spec = nlohmann::json::parse(recipe, nullptr, /*allow_exceptions=*/false);
  auto unsupported = [&] {
    return arrow::Status::Invalid("Unsupported permutation recipe: ",
                                  recipe.substr(0, 200));
  };
  if (!spec.is_object() || spec.value("format", 0) != kRecipeFormat) return unsupported();
  PermutationBuilder builder(std::move(base));
  // nlohmann's get<> throws on a type mismatch; a recipe is our own output, but it
  // travels through pickles and files, so a damaged one is an error, not a crash.
  try {
    if (spec.contains("filter")) builder.Filter(spec.at("filter").get<std::string>());
    if (spec.contains("split")) {
      const auto& split = spec.at("split");
      const std::string kind = split.value("kind", "");
      auto names = OptionalOf<std::vector<std::string>>(split, "names");
      auto sizes = SizesFromJson(split);
      if ((kind == "random" || kind == "sequential") && !sizes) return unsupported();
      if (kind == "random") {
        builder.SplitRandom(std::move(*sizes), split.at("seed").get<uint64_t>(),
                            OptionalOf<uint64_t>(split, "clump_size"), std::move(names));
      } else if (kind == "sequential") {
        builder.SplitSequential(std::move(*sizes), std::move(names));
      } else if (kind == "hash") {
        builder.SplitHash(split.at("columns").get<std::vector<std::string>>(),
                          split.at("weights").get<std::vector<uint64_t>>(),
                          split.at("discard").get<uint64_t>(), std::move(names));
      } else if (kind == "calculated") {
        builder.SplitCalculated(split.at("calculation").get<std::string>(),
                                std::move(names));
      } else {
        return unsupported();
      }
    }
    if (spec.contains("shuffle")) {
      const auto& shuffle = spec.at("shuffle");
      builder.Shuffle(shuffle.at("seed").get<uint64_t>(),
                      OptionalOf<uint64_t>(shuffle, "clump_size"));
    }
  } catch (const nlohmann::json::exception&) {
    return unsupported();
  }
  return builder;
}

// ---------------------------------------------------------------------------------------
// Execute

namespace {

using internal::Grouped;
using internal::ShuffleSpec;

arrow::Result<uint64_t> ClumpSize(const std::optional<uint64_t>& clump_size) {
  if (clump_size && *clump_size == 0) {
    return arrow::Status::Invalid("Invalid input, clump size must be greater than 0");
  }
  return clump_size.value_or(1);
}

// Calls f(Tag{}) with the narrowest unsigned type holding indexes below `num_splits`.
template <typename F>
auto WithTagType(uint64_t num_splits, F&& f) {
  if (num_splits <= (uint64_t{1} << 8)) return f(uint8_t{});
  if (num_splits <= (uint64_t{1} << 16)) return f(uint16_t{});
  if (num_splits <= (uint64_t{1} << 32)) return f(uint32_t{});
  return f(uint64_t{});
}

// Runs `options` over `base` and calls on_batch(batch) for each non-empty batch.
template <typename OnBatch>
arrow::Status ForEachBatch(const Snapshot& base, const ScanOptions& options,
                           OnBatch&& on_batch) {
  ARROW_ASSIGN_OR_RAISE(auto reader, base.Scan(options));
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (batch == nullptr) return arrow::Status::OK();
    if (batch->num_rows() > 0) ARROW_RETURN_NOT_OK(on_batch(*batch));
  }
}

void AppendIds(const arrow::Array& column, std::vector<uint64_t>* ids) {
  const auto& typed = static_cast<const arrow::UInt64Array&>(column);
  ids->insert(ids->end(), typed.raw_values(), typed.raw_values() + typed.length());
}

// A scan of `base` through `filter` returning `outputs`, bound to its schema.
arrow::Result<ScanOptions> BaseScan(const Snapshot& base,
                                    const std::optional<std::string>& filter,
                                    std::span<const OutputColumn> outputs) {
  ScanOptions options;
  if (filter) {
    ARROW_ASSIGN_OR_RAISE(options.filter, Filter::Make(base.schema(), *filter));
  }
  ARROW_ASSIGN_OR_RAISE(options.projection, Projection::Make(base.schema(), outputs));
  return options;
}

// The split id of one calculated value, or Invalid naming it and its row.
template <typename T>
arrow::Result<uint64_t> CalculatedId(T value, int64_t row, uint64_t row_id,
                                     const std::string& sql) {
  if constexpr (std::is_floating_point_v<T>) {
    const double v = static_cast<double>(value);
    // 2^64 is exactly representable; anything at or above it does not fit.
    if (std::isfinite(v) && v >= 0 && v == std::floor(v) && v < 18446744073709551616.0) {
      return static_cast<uint64_t>(v);
    }
    return arrow::Status::Invalid("Invalid input, split_calculated '", sql, "' gave ",
                                  internal::FormatFloatLikeRust(v), " at row ", row,
                                  " (_rowid ", row_id,
                                  "): split ids must be non-negative integers");
  } else if constexpr (std::is_signed_v<T>) {
    if (value < 0) {
      return arrow::Status::Invalid("Invalid input, split_calculated '", sql, "' gave ",
                                    static_cast<int64_t>(value), " at row ", row,
                                    " (_rowid ", row_id,
                                    "): split ids must be non-negative integers");
    }
    return static_cast<uint64_t>(value);
  } else {
    return static_cast<uint64_t>(value);
  }
}

template <typename ArrayType>
arrow::Status AppendCalculated(const arrow::Array& column,
                               const arrow::UInt64Array& row_ids, int64_t first_row,
                               const std::string& sql, std::vector<uint64_t>* tags) {
  const auto& typed = static_cast<const ArrayType&>(column);
  for (int64_t i = 0; i < typed.length(); ++i) {
    if (typed.IsNull(i)) {
      return arrow::Status::Invalid(
          "Invalid input, split_calculated '", sql, "' gave null at row ", first_row + i,
          " (_rowid ", row_ids.Value(i), "): split ids must be non-negative integers");
    }
    ARROW_ASSIGN_OR_RAISE(
        auto id, CalculatedId(typed.Value(i), first_row + i, row_ids.Value(i), sql));
    tags->push_back(id);
  }
  return arrow::Status::OK();
}

arrow::Status AppendCalculatedColumn(const arrow::Array& column,
                                     const arrow::UInt64Array& row_ids, int64_t first_row,
                                     const std::string& sql,
                                     std::vector<uint64_t>* tags) {
  switch (column.type_id()) {
    case arrow::Type::BOOL:
      return AppendCalculated<arrow::BooleanArray>(column, row_ids, first_row, sql, tags);
    case arrow::Type::INT8:
      return AppendCalculated<arrow::Int8Array>(column, row_ids, first_row, sql, tags);
    case arrow::Type::INT16:
      return AppendCalculated<arrow::Int16Array>(column, row_ids, first_row, sql, tags);
    case arrow::Type::INT32:
      return AppendCalculated<arrow::Int32Array>(column, row_ids, first_row, sql, tags);
    case arrow::Type::INT64:
      return AppendCalculated<arrow::Int64Array>(column, row_ids, first_row, sql, tags);
    case arrow::Type::UINT8:
      return AppendCalculated<arrow::UInt8Array>(column, row_ids, first_row, sql, tags);
    case arrow::Type::UINT16:
      return AppendCalculated<arrow::UInt16Array>(column, row_ids, first_row, sql, tags);
    case arrow::Type::UINT32:
      return AppendCalculated<arrow::UInt32Array>(column, row_ids, first_row, sql, tags);
    case arrow::Type::UINT64:
      return AppendCalculated<arrow::UInt64Array>(column, row_ids, first_row, sql, tags);
    case arrow::Type::FLOAT:
      return AppendCalculated<arrow::FloatArray>(column, row_ids, first_row, sql, tags);
    case arrow::Type::DOUBLE:
      return AppendCalculated<arrow::DoubleArray>(column, row_ids, first_row, sql, tags);
    default:
      return arrow::Status::Invalid(
          "Invalid input, split_calculated '", sql, "' has type ",
          column.type()->ToString(),
          "; split ids must be integers (or booleans, or integral floats)");
  }
}

// Narrows calculated split ids to dense tags and groups by them.
// `values` receives the split id of each tag.
arrow::Result<Grouped> GroupCalculated(std::vector<uint64_t> ids,
                                       std::vector<uint64_t> raw,
                                       std::vector<uint64_t>* values,
                                       const std::optional<ShuffleSpec>& shuffle,
                                       ThreadPool* pool) {
  uint64_t max = 0;
  for (uint64_t v : raw) max = std::max(max, v);
  uint64_t num_tags;
  if (raw.empty()) {
    num_tags = 0;
  } else if (max < (uint64_t{1} << 20)) {
    // Small ids: the id is the tag (empty splits in between cost one count each).
    num_tags = max + 1;
    values->resize(num_tags);
    for (uint64_t i = 0; i < num_tags; ++i) (*values)[i] = i;
  } else {
    // Large ids: rank them among the distinct ids.
    std::vector<uint64_t> distinct = raw;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    distinct.shrink_to_fit();
    for (uint64_t& v : raw) {
      v = static_cast<uint64_t>(std::lower_bound(distinct.begin(), distinct.end(), v) -
                                distinct.begin());
    }
    num_tags = distinct.size();
    *values = std::move(distinct);
  }
  return WithTagType(num_tags, [&](auto tag) -> Grouped {
    using Tag = decltype(tag);
    if constexpr (std::is_same_v<Tag, uint64_t>) {
      return internal::ShuffleAndGroup(std::move(ids), std::move(raw), num_tags, shuffle,
                                       pool);
    } else {
      std::vector<Tag> tags(raw.size());
      for (size_t i = 0; i < raw.size(); ++i) tags[i] = static_cast<Tag>(raw[i]);
      std::vector<uint64_t>().swap(raw);
      return internal::ShuffleAndGroup(std::move(ids), std::move(tags), num_tags, shuffle,
                                       pool);
    }
  });
}

// Groups a stream already laid out as consecutive splits of `counts` rows, after the
// optional shuffle of the whole stream.
Grouped GroupContiguous(std::vector<uint64_t> ids, std::vector<uint64_t> counts,
                        const std::optional<ShuffleSpec>& shuffle, ThreadPool* pool,
                        internal::ShuffleWorkspace* workspace) {
  if (!shuffle) return Grouped{std::move(ids), std::move(counts)};
  if (counts.size() <= 1) {
    internal::ShuffleIdsInClumps(&ids, shuffle->clump_size, shuffle->seed, pool,
                                 internal::kShuffleBucketItems, workspace);
    return Grouped{std::move(ids), std::move(counts)};
  }
  if (shuffle->clump_size == 1 &&
      internal::ShuffleContiguousSplits(&ids, counts, shuffle->seed, pool,
                                        internal::kShuffleBucketItems, workspace)) {
    return Grouped{std::move(ids), std::move(counts)};
  }
  const uint64_t num_splits = counts.size();
  return WithTagType(num_splits, [&](auto tag) -> Grouped {
    using Tag = decltype(tag);
    std::vector<Tag> tags(ids.size());
    uint64_t at = 0;
    for (uint64_t s = 0; s < num_splits; ++s) {
      std::fill_n(tags.begin() + static_cast<int64_t>(at), counts[s], Tag(s));
      at += counts[s];
    }
    return internal::ShuffleAndGroup(std::move(ids), std::move(tags), num_splits, shuffle,
                                     pool);
  });
}

// The snapshot's row ids by scan position, unless it has deleted rows.
std::optional<internal::DenseRowIds> DenseRows(const Snapshot& base) {
  std::vector<internal::DenseRowIds::Fragment> fragments;
  const auto& infos = base.manifest().fragments;
  for (size_t i = 0; i < infos.size(); ++i) {
    // From the manifest: a fragment need not be opened to know it has deletions.
    if (infos[i].deletion && infos[i].deletion->num_deleted > 0) return std::nullopt;
    fragments.push_back({infos[i].id, static_cast<uint64_t>(infos[i].physical_rows)});
  }
  return internal::DenseRowIds(std::move(fragments));
}

// Whether a snapshot's table can be opened again by its location (in another process):
// what a recipe needs.
bool Reopenable(const Snapshot& base) {
  return dynamic_cast<const MemoryStore*>(base.store().get()) == nullptr;
}

}  // namespace

arrow::Result<std::shared_ptr<const PermutationTable>> PermutationBuilder::Execute()
    const {
  if (base_ == nullptr) return arrow::Status::Invalid("Permutation builder has no table");
  // Settings that need no data are checked before the scan.
  std::optional<ShuffleSpec> shuffle;
  if (shuffle_) {
    ARROW_ASSIGN_OR_RAISE(uint64_t clump, ClumpSize(shuffle_->clump_size));
    shuffle = ShuffleSpec{shuffle_->seed, clump};
  }
  ThreadPool* pool = ThreadPool::Default();
  std::optional<uint64_t> num_splits;
  switch (split_kind_) {
    case SplitKind::kNone:
      num_splits = 1;
      break;
    case SplitKind::kRandom:
    case SplitKind::kSequential:
      if (sizes_.kind == SplitSizes::Kind::kFixed && sizes_.fixed == 0) {
        ARROW_RETURN_NOT_OK(sizes_.ToCounts(0).status());
      }
      num_splits = sizes_.num_splits();
      break;
    case SplitKind::kHash: {
      if (hash_columns_.empty()) {
        return arrow::Status::Invalid(
            "Invalid input, Hash strategy requires at least one column");
      }
      if (hash_weights_.empty()) {
        return arrow::Status::Invalid(
            "Invalid input, Hash strategy requires at least one split weight");
      }
      unsigned __int128 total = hash_discard_;
      for (uint64_t w : hash_weights_) {
        if (w == 0) {
          return arrow::Status::Invalid(
              "Invalid input, Split weights must be greater than 0");
        }
        total += w;
      }
      if (total > std::numeric_limits<uint64_t>::max()) {
        return arrow::Status::Invalid(
            "Invalid input, the split weights and discard weight sum to more than 2^64 - "
            "1");
      }
      num_splits = hash_weights_.size();
      break;
    }
    case SplitKind::kCalculated:
      break;  // checked per row
  }
  ARROW_RETURN_NOT_OK(internal::ValidateSplitNames(split_names_, num_splits));

  const uint64_t capacity = static_cast<uint64_t>(base_->num_rows());
  Grouped grouped;
  std::shared_ptr<arrow::Buffer> ids_buffer;  // the row ids when not in grouped.ids
  std::vector<uint64_t> split_values;         // calculated: the split id of each group
  switch (split_kind_) {
    case SplitKind::kNone:
    case SplitKind::kRandom:
    case SplitKind::kSequential: {
      // Without a filter or deleted rows, the row ids follow from the positions: no scan.
      std::optional<internal::DenseRowIds> dense;
      if (!filter_) dense = DenseRows(*base_);
      const uint64_t m = dense ? dense->num_rows() : 0;
      std::vector<uint64_t> counts{m};
      std::optional<ShuffleSpec> split_shuffle;
      if (dense && split_kind_ != SplitKind::kNone) {
        ARROW_ASSIGN_OR_RAISE(counts, sizes_.ToCounts(m));
      }
      if (dense && split_kind_ == SplitKind::kRandom) {
        ARROW_ASSIGN_OR_RAISE(uint64_t clump, ClumpSize(split_shuffle_.clump_size));
        split_shuffle = ShuffleSpec{split_shuffle_.seed, clump};
      }
      if (dense &&
          internal::ShuffleDenseApplies(*dense, counts, split_shuffle, shuffle)) {
        ARROW_ASSIGN_OR_RAISE(auto buffer,
                              internal::MapZeroed(static_cast<int64_t>(m * 8)));
        internal::PrefaultForWrite(buffer->mutable_data(), static_cast<int64_t>(m * 8),
                                   pool);
        internal::ShuffleDense(*dense, counts, split_shuffle, shuffle, pool,
                               buffer->mutable_data_as<uint64_t>());
        ids_buffer = std::move(buffer);
        grouped.counts = std::move(counts);
        break;
      }
      std::vector<uint64_t> ids;
      if (dense) {
        ids.resize(m);
        for (uint64_t i = 0; i < m; ++i) ids[i] = (*dense)(i);
      } else {
        ids.reserve(capacity);
        const OutputColumn row_id[] = {{kRowIdColumn, kRowIdColumn}};
        ARROW_ASSIGN_OR_RAISE(ScanOptions options, BaseScan(*base_, filter_, row_id));
        ARROW_RETURN_NOT_OK(
            ForEachBatch(*base_, options, [&](const arrow::RecordBatch& b) {
              AppendIds(*b.column(0), &ids);
              return arrow::Status::OK();
            }));
        counts = {ids.size()};
      }
      // The split's shuffle and the final one share their scratch arrays.
      internal::ShuffleWorkspace workspace;
      if (split_kind_ != SplitKind::kNone) {
        ARROW_ASSIGN_OR_RAISE(counts, sizes_.ToCounts(ids.size()));
        if (split_kind_ == SplitKind::kRandom) {
          ARROW_ASSIGN_OR_RAISE(uint64_t clump, ClumpSize(split_shuffle_.clump_size));
          internal::ShuffleIdsInClumps(&ids, clump, split_shuffle_.seed, pool,
                                       internal::kShuffleBucketItems, &workspace);
        }
        uint64_t kept = 0;
        for (uint64_t c : counts) kept += c;
        ids.resize(kept);  // leftover rows are dropped
      }
      grouped =
          GroupContiguous(std::move(ids), std::move(counts), shuffle, pool, &workspace);
      break;
    }
    case SplitKind::kHash: {
      // Hash columns are names, never SQL (as LanceDB projects them): "id % 3" is an
      // unknown column, not an expression to hash.
      std::vector<std::string> names = hash_columns_;
      names.push_back(kRowIdColumn);
      ARROW_ASSIGN_OR_RAISE(ScanOptions options, BaseScan(*base_, filter_, {}));
      ARROW_ASSIGN_OR_RAISE(options.projection,
                            Projection::Columns(base_->schema(), names));
      // Cumulative weights: split i takes residues in [thresholds[i-1], thresholds[i]).
      std::vector<uint64_t> thresholds;
      uint64_t total = hash_discard_;
      for (uint64_t w : hash_weights_) {
        total += w;
        thresholds.push_back((thresholds.empty() ? 0 : thresholds.back()) + w);
      }
      const uint64_t kept_below = thresholds.back();
      const int num_columns = static_cast<int>(hash_columns_.size());
      ARROW_ASSIGN_OR_RAISE(
          grouped, WithTagType(*num_splits, [&](auto tag) -> arrow::Result<Grouped> {
            using Tag = decltype(tag);
            std::vector<uint64_t> ids;
            std::vector<Tag> tags;
            ids.reserve(capacity);
            tags.reserve(capacity);
            // Hashing is most of a hash split's time: a batch's rows are hashed in
            // pieces on the pool, each into buffers of its own, appended in order
            // afterwards (the ids and tags of a serial loop).
            const int64_t max_pieces = pool->num_threads();
            std::vector<std::vector<uint64_t>> piece_ids(max_pieces);
            std::vector<std::vector<Tag>> piece_tags(max_pieces);
            ARROW_RETURN_NOT_OK(
                ForEachBatch(*base_, options, [&](const arrow::RecordBatch& b) {
                  std::vector<std::shared_ptr<arrow::Array>> columns;
                  for (int c = 0; c < num_columns; ++c) columns.push_back(b.column(c));
                  const auto& row_ids =
                      static_cast<const arrow::UInt64Array&>(*b.column(num_columns));
                  const int64_t n = b.num_rows();
                  constexpr int64_t kPieceRows = int64_t{1} << 15;
                  const int64_t pieces =
                      std::clamp<int64_t>(n / kPieceRows, 1, max_pieces);
                  ARROW_RETURN_NOT_OK(pool->ParallelFor(pieces, [&](int64_t p) {
                    // A hasher per piece (a RowHasher is not thread-safe), and vectors
                    // of its own, moved into place at the end: the pieces' vectors sit
                    // side by side, and appending to them in place made the threads
                    // fight over their cache line at every row.
                    ARROW_ASSIGN_OR_RAISE(
                        auto hasher, internal::RowHasher::Make(columns, hash_columns_));
                    std::vector<uint64_t> out_ids = std::move(piece_ids[p]);
                    std::vector<Tag> out_tags = std::move(piece_tags[p]);
                    out_ids.clear();
                    out_tags.clear();
                    const int64_t end = n * (p + 1) / pieces;
                    for (int64_t i = n * p / pieces; i < end; ++i) {
                      const uint64_t r = hasher.Hash(i) % total;
                      if (r >= kept_below) continue;  // discarded
                      const auto split = static_cast<Tag>(
                          std::upper_bound(thresholds.begin(), thresholds.end(), r) -
                          thresholds.begin());
                      out_ids.push_back(row_ids.Value(i));
                      out_tags.push_back(split);
                    }
                    piece_ids[p] = std::move(out_ids);
                    piece_tags[p] = std::move(out_tags);
                    return arrow::Status::OK();
                  }));
                  for (int64_t p = 0; p < pieces; ++p) {
                    ids.insert(ids.end(), piece_ids[p].begin(), piece_ids[p].end());
                    tags.insert(tags.end(), piece_tags[p].begin(), piece_tags[p].end());
                  }
                  return arrow::Status::OK();
                }));
            return internal::ShuffleAndGroup(std::move(ids), std::move(tags), *num_splits,
                                             shuffle, pool);
          }));
      break;
    }
    case SplitKind::kCalculated: {
      const OutputColumn outputs[] = {{"split_id", calculation_},
                                      {kRowIdColumn, kRowIdColumn}};
      ARROW_ASSIGN_OR_RAISE(ScanOptions options, BaseScan(*base_, filter_, outputs));
      std::vector<uint64_t> ids, raw;
      ids.reserve(capacity);
      raw.reserve(capacity);
      ARROW_RETURN_NOT_OK(ForEachBatch(*base_, options, [&](const arrow::RecordBatch& b) {
        const auto& row_ids = static_cast<const arrow::UInt64Array&>(*b.column(1));
        ARROW_RETURN_NOT_OK(AppendCalculatedColumn(
            *b.column(0), row_ids, static_cast<int64_t>(ids.size()), calculation_, &raw));
        AppendIds(row_ids, &ids);
        return arrow::Status::OK();
      }));
      if (split_names_) {
        for (size_t i = 0; i < raw.size(); ++i) {
          if (raw[i] >= split_names_->size()) {
            return arrow::Status::Invalid(
                "Invalid input, split_calculated '", calculation_, "' gave split id ",
                raw[i], " at row ", i, " (_rowid ", ids[i], ") but only ",
                split_names_->size(), " split names were given");
          }
        }
      }
      ARROW_ASSIGN_OR_RAISE(grouped, GroupCalculated(std::move(ids), std::move(raw),
                                                     &split_values, shuffle, pool));
      break;
    }
  }

  // Groups become splits: group g holds split g, or split_values[g] (calculated).
  std::vector<uint64_t> split_ids;
  std::vector<int64_t> starts{0};
  for (size_t g = 0; g < grouped.counts.size(); ++g) {
    split_ids.push_back(split_values.empty() ? g : split_values[g]);
    starts.push_back(starts.back() + static_cast<int64_t>(grouped.counts[g]));
  }
  const int64_t num_rows = starts.back();
  if (ids_buffer == nullptr)
    ids_buffer = arrow::Buffer::FromVector(std::move(grouped.ids));
  auto row_ids = std::make_shared<arrow::UInt64Array>(num_rows, std::move(ids_buffer));
  PermutationProvenance provenance;
  provenance.base_version = base_->version();
  if (Reopenable(*base_)) {
    provenance.recipe = Recipe();
    provenance.base_location = base_->store()->location();
  }
  return PermutationTable::Make(std::move(row_ids), std::move(split_ids),
                                std::move(starts), split_names_, std::move(provenance));
}

}  // namespace riffledb
