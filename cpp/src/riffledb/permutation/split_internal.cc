#include "riffledb/permutation/split_internal.h"

#include <arrow/array.h>
#include <arrow/type_traits.h>
#include <arrow/visit_type_inline.h>
#include <xxhash.h>

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

namespace riffledb::internal {

std::string FormatFloatLikeRust(double value) {
  char buffer[512];
  auto [end, ec] =
      std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed);
  if (ec != std::errc()) return std::to_string(value);
  return std::string(buffer, end);
}

arrow::Status ValidateSplitNames(const std::optional<std::vector<std::string>>& names,
                                 std::optional<uint64_t> num_splits) {
  if (!names) return arrow::Status::OK();
  std::set<std::string_view> seen;
  for (const auto& name : *names) {
    if (!seen.insert(name).second) {
      return arrow::Status::Invalid("Invalid input, split name '", name,
                                    "' is given more than once");
    }
  }
  if (num_splits && names->size() != *num_splits) {
    return arrow::Status::Invalid("Invalid input, ", names->size(),
                                  " split names were given for ", *num_splits, " splits");
  }
  return arrow::Status::OK();
}

std::string SplitNamesJson(const std::vector<std::string>& names) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& name : names) array.push_back(name);
  return array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// ---------------------------------------------------------------------------------------
// Canonical value encoding (builder.h) and XXH64.

struct RowHasher::Encoder {
  // Appends the encoding of a non-null row.
  std::function<void(int64_t, std::string*)> value;
  const arrow::Array* array = nullptr;
};

namespace {

void PutU64(uint64_t v, std::string* out) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(v >> (8 * i));
  out->append(bytes, 8);
}

void PutBytes(std::string_view v, std::string* out) {
  PutU64(v.size(), out);
  out->append(v.data(), v.size());
}

uint64_t CanonicalDoubleBits(double v) {
  if (std::isnan(v)) return 0x7ff8000000000000ULL;
  if (v == 0.0) v = 0.0;  // -0.0 -> +0.0
  return std::bit_cast<uint64_t>(v);
}

using ValueFn = std::function<void(int64_t, std::string*)>;

arrow::Result<ValueFn> MakeValueFn(const std::shared_ptr<arrow::Array>& array,
                                   const std::string& name);

template <typename ArrayType>
ValueFn Signed(const std::shared_ptr<arrow::Array>& array) {
  auto typed = std::static_pointer_cast<ArrayType>(array);
  return [typed](int64_t i, std::string* out) {
    PutU64(static_cast<uint64_t>(static_cast<int64_t>(typed->Value(i))), out);
  };
}

template <typename ArrayType>
ValueFn Unsigned(const std::shared_ptr<arrow::Array>& array) {
  auto typed = std::static_pointer_cast<ArrayType>(array);
  return [typed](int64_t i, std::string* out) {
    PutU64(static_cast<uint64_t>(typed->Value(i)), out);
  };
}

template <typename ArrayType>
ValueFn Bytes(const std::shared_ptr<arrow::Array>& array) {
  auto typed = std::static_pointer_cast<ArrayType>(array);
  return [typed](int64_t i, std::string* out) { PutBytes(typed->GetView(i), out); };
}

arrow::Result<ValueFn> MakeValueFn(const std::shared_ptr<arrow::Array>& array,
                                   const std::string& name) {
  using arrow::Type;
  switch (array->type_id()) {
    case Type::BOOL: {
      auto typed = std::static_pointer_cast<arrow::BooleanArray>(array);
      return ValueFn([typed](int64_t i, std::string* out) {
        out->push_back(typed->Value(i) ? 1 : 0);
      });
    }
    case Type::INT8:
      return Signed<arrow::Int8Array>(array);
    case Type::INT16:
      return Signed<arrow::Int16Array>(array);
    case Type::INT32:
      return Signed<arrow::Int32Array>(array);
    case Type::INT64:
      return Signed<arrow::Int64Array>(array);
    case Type::DATE32:
      return Signed<arrow::Date32Array>(array);
    case Type::DATE64:
      return Signed<arrow::Date64Array>(array);
    case Type::TIME32:
      return Signed<arrow::Time32Array>(array);
    case Type::TIME64:
      return Signed<arrow::Time64Array>(array);
    case Type::TIMESTAMP:
      return Signed<arrow::TimestampArray>(array);
    case Type::DURATION:
      return Signed<arrow::DurationArray>(array);
    case Type::UINT8:
      return Unsigned<arrow::UInt8Array>(array);
    case Type::UINT16:
      return Unsigned<arrow::UInt16Array>(array);
    case Type::UINT32:
      return Unsigned<arrow::UInt32Array>(array);
    case Type::UINT64:
      return Unsigned<arrow::UInt64Array>(array);
    case Type::FLOAT: {
      auto typed = std::static_pointer_cast<arrow::FloatArray>(array);
      return ValueFn([typed](int64_t i, std::string* out) {
        PutU64(CanonicalDoubleBits(static_cast<double>(typed->Value(i))), out);
      });
    }
    case Type::DOUBLE: {
      auto typed = std::static_pointer_cast<arrow::DoubleArray>(array);
      return ValueFn([typed](int64_t i, std::string* out) {
        PutU64(CanonicalDoubleBits(typed->Value(i)), out);
      });
    }
    case Type::STRING:
      return Bytes<arrow::StringArray>(array);
    case Type::LARGE_STRING:
      return Bytes<arrow::LargeStringArray>(array);
    case Type::STRING_VIEW:
      return Bytes<arrow::StringViewArray>(array);
    case Type::BINARY:
      return Bytes<arrow::BinaryArray>(array);
    case Type::LARGE_BINARY:
      return Bytes<arrow::LargeBinaryArray>(array);
    case Type::BINARY_VIEW:
      return Bytes<arrow::BinaryViewArray>(array);
    case Type::FIXED_SIZE_BINARY:
      return Bytes<arrow::FixedSizeBinaryArray>(array);
    case Type::DECIMAL128:
    case Type::DECIMAL256: {
      auto typed = std::static_pointer_cast<arrow::FixedSizeBinaryArray>(array);
      // Arrow stores decimals as little-endian two's complement words on every platform
      // we build for (x86-64, aarch64).
      return ValueFn([typed](int64_t i, std::string* out) {
        const auto view = typed->GetView(i);
        out->append(view.data(), view.size());
      });
    }
    case Type::DICTIONARY: {
      auto dict = std::static_pointer_cast<arrow::DictionaryArray>(array);
      ARROW_ASSIGN_OR_RAISE(auto inner, MakeValueFn(dict->dictionary(), name));
      auto values = dict->dictionary();
      return ValueFn([dict, values, inner](int64_t i, std::string* out) {
        const int64_t index = dict->GetValueIndex(i);
        if (values->IsNull(index)) {
          // A null dictionary entry is a null value: undo the 0x01 tag written for it.
          out->back() = 0;
          return;
        }
        inner(index, out);
      });
    }
    default:
      return arrow::Status::NotImplemented("Hash split on column '", name, "' of type ",
                                           array->type()->ToString(),
                                           " is not supported");
  }
}

}  // namespace

arrow::Result<RowHasher> RowHasher::Make(
    const std::vector<std::shared_ptr<arrow::Array>>& columns,
    const std::vector<std::string>& names) {
  RowHasher hasher;
  for (size_t c = 0; c < columns.size(); ++c) {
    auto encoder = std::make_shared<Encoder>();
    ARROW_ASSIGN_OR_RAISE(encoder->value, MakeValueFn(columns[c], names.at(c)));
    encoder->array = columns[c].get();
    hasher.encoders_.push_back(std::move(encoder));
  }
  if (columns.size() == 1 && (columns[0]->type_id() == arrow::Type::INT64 ||
                              columns[0]->type_id() == arrow::Type::UINT64)) {
    const arrow::ArrayData& data = *columns[0]->data();
    hasher.single_column_ = columns[0].get();
    hasher.single_values_ = data.GetValues<uint64_t>(1);
  }
  return hasher;
}

const std::string& RowHasher::Encode(int64_t row) {
  buffer_.clear();
  for (const auto& encoder : encoders_) {
    if (encoder->array->IsNull(row)) {
      buffer_.push_back(0);
    } else {
      buffer_.push_back(1);
      encoder->value(row, &buffer_);
    }
  }
  return buffer_;
}

uint64_t RowHasher::Hash(int64_t row) {
  if (single_values_ != nullptr) {
    static_assert(std::endian::native == std::endian::little,
                  "the canonical encoding is little-endian");
    if (single_column_->IsNull(row)) {
      const char null_tag = 0;
      return XXH64(&null_tag, 1, 0);
    }
    char bytes[9];
    bytes[0] = 1;
    std::memcpy(bytes + 1, single_values_ + row, 8);
    return XXH64(bytes, sizeof(bytes), 0);
  }
  const std::string& bytes = Encode(row);
  return XXH64(bytes.data(), bytes.size(), 0);
}

// ---------------------------------------------------------------------------------------
// Clump shuffles

std::vector<uint64_t> ClumpOrder(uint64_t num_rows, uint64_t clump_size, Rng& rng) {
  const uint64_t num_clumps = num_rows / clump_size + (num_rows % clump_size != 0);
  std::vector<uint64_t> order(num_clumps);
  std::iota(order.begin(), order.end(), uint64_t{0});
  ShufflePrefetched(rng, std::span<uint64_t>(order));
  return order;
}

}  // namespace riffledb::internal
