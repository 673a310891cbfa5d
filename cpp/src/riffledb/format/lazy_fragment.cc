#include "riffledb/format/lazy_fragment.h"

#include <arrow/io/memory.h>
#include <arrow/ipc/message.h>
#include <arrow/ipc/reader.h>
#include <arrow/record_batch.h>
#include <arrow/type_traits.h>
#include <arrow/util/checked_cast.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "riffledb/format/fragment.h"
#include "riffledb/util/status.h"

namespace riffledb::format {

namespace {

constexpr std::string_view kMagic = "ARROW1";
constexpr int64_t kTrailer = 10;  // int32 footer length + magic

arrow::Status Corrupt(const std::string& path, const std::string& why) {
  return WithErrorKind(
      arrow::Status::Invalid("Corrupt fragment file '", path, "': ", why),
      ErrorKind::kCorruption);
}

// Little-endian loads from a span, bounds checked by the caller.
template <typename T>
T Load(std::span<const uint8_t> bytes, size_t at) {
  T value;
  std::memcpy(&value, bytes.data() + at, sizeof(T));
  return value;
}

bool IsOffsetType(arrow::Type::type id) {
  return id == arrow::Type::BINARY || id == arrow::Type::STRING ||
         id == arrow::Type::LARGE_BINARY || id == arrow::Type::LARGE_STRING ||
         id == arrow::Type::LIST || id == arrow::Type::LARGE_LIST;
}

bool IsLargeOffsets(arrow::Type::type id) {
  return id == arrow::Type::LARGE_BINARY || id == arrow::Type::LARGE_STRING ||
         id == arrow::Type::LARGE_LIST;
}

// Bit width of a fixed-width type's values (bool: 1).
int BitWidth(const arrow::DataType& type) {
  return arrow::internal::checked_cast<const arrow::FixedWidthType&>(type).bit_width();
}

// Checks, without reading data, that `a`'s buffers are large enough for its length and
// lie inside [body_begin, body_end) of `file`'s map.
arrow::Status CheckLayout(const io::CachedFile& file, const arrow::ArrayData& a,
                          int64_t body_begin, int64_t body_end) {
  const arrow::DataType& type = *a.type;
  const int64_t end = a.offset + a.length;
  if (a.length < 0 || a.offset < 0 || a.null_count > a.length) {
    return arrow::Status::Invalid("a ", type.ToString(), " array has length ", a.length);
  }
  for (const auto& buffer : a.buffers) {
    if (buffer == nullptr || buffer->size() == 0) continue;
    auto begin = file.OffsetOf(buffer->data());
    auto last = file.OffsetOf(buffer->data() + buffer->size());
    if (!begin || !last || *begin < body_begin || *last > body_end) {
      return arrow::Status::Invalid(
          "a buffer of a ", type.ToString(),
          " array is not in its batch's body (misaligned or compressed buffers)");
    }
  }
  auto size = [&](int i) -> int64_t {
    return static_cast<size_t>(i) < a.buffers.size() && a.buffers[i] != nullptr
               ? a.buffers[i]->size()
               : 0;
  };
  auto too_small = [&](const char* what) {
    return arrow::Status::Invalid("the ", what, " buffer of a ", type.ToString(),
                                  " array of ", a.length, " rows is too small");
  };
  if (a.buffers.empty()) {
    if (type.id() == arrow::Type::NA) return arrow::Status::OK();
    return arrow::Status::Invalid("a ", type.ToString(), " array has no buffers");
  }
  if (a.buffers[0] != nullptr && size(0) * 8 < end) return too_small("validity");
  if (a.length == 0) return arrow::Status::OK();
  switch (type.id()) {
    case arrow::Type::NA:
      return arrow::Status::OK();
    case arrow::Type::FIXED_SIZE_LIST: {
      const int64_t n =
          arrow::internal::checked_cast<const arrow::FixedSizeListType&>(type)
              .list_size();
      if (a.child_data.size() != 1 || a.child_data[0]->length < end * n) {
        return too_small("child");
      }
      return CheckLayout(file, *a.child_data[0], body_begin, body_end);
    }
    case arrow::Type::STRUCT:
      if (a.child_data.size() != static_cast<size_t>(type.num_fields())) {
        return too_small("child");
      }
      for (const auto& child : a.child_data) {
        if (child->length < end) return too_small("child");
        ARROW_RETURN_NOT_OK(CheckLayout(file, *child, body_begin, body_end));
      }
      return arrow::Status::OK();
    default:
      break;
  }
  if (IsOffsetType(type.id())) {
    const int64_t width = IsLargeOffsets(type.id()) ? 8 : 4;
    if (a.buffers.size() < 2 || size(1) < (end + 1) * width) return too_small("offsets");
    if (type.id() == arrow::Type::LIST || type.id() == arrow::Type::LARGE_LIST) {
      if (a.child_data.size() != 1) return too_small("child");
      return CheckLayout(file, *a.child_data[0], body_begin, body_end);
    }
    return arrow::Status::OK();  // values are checked against offsets when fetched
  }
  // Fixed width (RowsFetchable admitted nothing else).
  if (a.buffers.size() < 2 || size(1) * 8 < end * BitWidth(type)) {
    return too_small("values");
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::vector<IpcBlock>> ParseIpcFooter(std::span<const uint8_t> footer,
                                                    int64_t footer_offset) {
  const size_t n = footer.size();
  auto bad = [](const char* why) {
    return arrow::Status::Invalid("Invalid IPC file footer: ", why);
  };
  // Root table, then its vtable (flatbuffers' layout: a table starts with the signed
  // distance back to its vtable; a vtable lists its size, the table's, then one uint16
  // offset per field, 0 for an absent field).
  if (n < 8) return bad("too short");
  const uint32_t table = Load<uint32_t>(footer, 0);
  if (table % 4 != 0 || table > n - 4) return bad("root table out of bounds");
  const int64_t vtable = int64_t{table} - Load<int32_t>(footer, table);
  if (vtable < 0 || vtable % 2 != 0 || vtable > static_cast<int64_t>(n) - 4) {
    return bad("vtable out of bounds");
  }
  const uint16_t vtable_size = Load<uint16_t>(footer, vtable);
  const uint16_t table_size = Load<uint16_t>(footer, vtable + 2);
  if (vtable_size < 4 || vtable_size % 2 != 0 ||
      vtable + vtable_size > static_cast<int64_t>(n) || table + table_size > n) {
    return bad("vtable size out of bounds");
  }
  // A vector of 24-byte Block structs: field 2 (dictionaries) or 3 (recordBatches).
  auto blocks_of = [&](int field) -> arrow::Result<std::pair<size_t, uint32_t>> {
    const int64_t slot = 4 + 2 * field;
    if (slot + 2 > vtable_size) return std::pair<size_t, uint32_t>{0, 0};
    const uint16_t at = Load<uint16_t>(footer, vtable + slot);
    if (at == 0) return std::pair<size_t, uint32_t>{0, 0};
    if (at + 4 > table_size) return bad("field out of its table");
    const size_t field_pos = table + at;
    const uint32_t rel = Load<uint32_t>(footer, field_pos);
    if (rel > n || field_pos + rel > n - 4) return bad("vector out of bounds");
    const size_t vec = field_pos + rel;
    const uint32_t count = Load<uint32_t>(footer, vec);
    if (count > (n - vec - 4) / 24) return bad("vector longer than the footer");
    return std::pair<size_t, uint32_t>{vec + 4, count};
  };
  ARROW_ASSIGN_OR_RAISE(auto dictionaries, blocks_of(2));
  if (dictionaries.second != 0) {
    return arrow::Status::NotImplemented("IPC files with dictionary batches");
  }
  ARROW_ASSIGN_OR_RAISE(auto batches, blocks_of(3));
  std::vector<IpcBlock> blocks(batches.second);
  int64_t previous_end = 8;  // after the leading magic and its padding
  for (uint32_t i = 0; i < batches.second; ++i) {
    const size_t at = batches.first + size_t{i} * 24;
    IpcBlock& block = blocks[i];
    block.offset = Load<int64_t>(footer, at);
    block.metadata_length = Load<int32_t>(footer, at + 8);
    block.body_length = Load<int64_t>(footer, at + 16);
    if (block.offset < previous_end || block.offset % 8 != 0 ||
        block.metadata_length < 8 || block.metadata_length % 8 != 0 ||
        block.body_length < 0 || block.offset > footer_offset ||
        block.metadata_length > footer_offset - block.offset ||
        block.body_length > footer_offset - block.offset - block.metadata_length) {
      return arrow::Status::Invalid("Invalid IPC file footer: record batch ", i, " at ",
                                    block.offset, " (", block.metadata_length, " + ",
                                    block.body_length,
                                    " bytes) is not between the previous one and the "
                                    "footer at ",
                                    footer_offset);
    }
    previous_end = block.offset + block.metadata_length + block.body_length;
  }
  return blocks;
}

bool RowsFetchable(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::NA:
    case arrow::Type::STRUCT:
    case arrow::Type::FIXED_SIZE_LIST:
    case arrow::Type::LIST:
    case arrow::Type::LARGE_LIST:
      for (const auto& field : type.fields()) {
        if (!RowsFetchable(*field->type())) return false;
      }
      return true;
    case arrow::Type::BINARY:
    case arrow::Type::STRING:
    case arrow::Type::LARGE_BINARY:
    case arrow::Type::LARGE_STRING:
      return true;
    default:
      return arrow::is_fixed_width(type.id()) && type.id() != arrow::Type::DICTIONARY &&
             type.num_fields() == 0;
  }
}

arrow::Result<std::shared_ptr<FragmentData>> OpenCachedFragmentFile(
    const std::shared_ptr<io::CachedFile>& file, const std::string& path,
    const std::shared_ptr<arrow::Schema>& schema, int64_t expected_rows,
    const FileDigest& digest) {
  const int64_t size = file->file_size();
  if (size != digest.size) {
    return Corrupt(path, "it has " + std::to_string(size) + " bytes, the manifest says " +
                             std::to_string(digest.size));
  }
  if (size < 8 + kTrailer) return Corrupt(path, "it is too short for an Arrow IPC file");
  // The head magic and the trailer, in one round.
  const io::ByteRange ends[] = {{0, 8}, {size - kTrailer, kTrailer}};
  ARROW_RETURN_NOT_OK(file->Ensure(ends));
  const uint8_t* data = file->data();
  if (std::memcmp(data, kMagic.data(), kMagic.size()) != 0) {
    return Corrupt(path, "it does not start with the Arrow IPC file magic 'ARROW1'");
  }
  if (std::memcmp(data + size - kMagic.size(), kMagic.data(), kMagic.size()) != 0) {
    return Corrupt(path, "it does not end with the Arrow IPC file magic 'ARROW1'");
  }
  int32_t footer_length;
  std::memcpy(&footer_length, data + size - kTrailer, 4);
  if (footer_length <= 0 || footer_length > size - kTrailer - 8) {
    return Corrupt(
        path, "its footer length " + std::to_string(footer_length) + " is out of range");
  }
  const int64_t footer_offset = size - kTrailer - footer_length;
  const io::ByteRange footer_range{footer_offset, footer_length};
  ARROW_RETURN_NOT_OK(file->Ensure({&footer_range, 1}));

  // Arrow's reader decodes the schema (from the fetched footer: it reads nothing else
  // when opened); the blocks are ours, checked against its count.
  auto reader =
      arrow::ipc::RecordBatchFileReader::Open(file.get(), FragmentReadOptions());
  if (!reader.ok()) return Corrupt(path, reader.status().message());
  const auto file_schema = (*reader)->schema();
  if (!file_schema->Equals(*schema, /*check_metadata=*/false)) {
    return Corrupt(path, "its schema does not match the manifest.\nExpected:\n" +
                             schema->ToString() + "\nFile has:\n" +
                             file_schema->ToString());
  }
  bool fetchable = true;
  for (const auto& field : schema->fields()) fetchable &= RowsFetchable(*field->type());
  auto blocks = ParseIpcFooter({data + footer_offset, static_cast<size_t>(footer_length)},
                               footer_offset);
  if (!fetchable || blocks.status().IsNotImplemented()) {
    // Read whole and validated, as a local file (dictionaries, unions...).
    const io::ByteRange all{0, size};
    ARROW_RETURN_NOT_OK(file->Ensure({&all, 1}));
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
    int64_t rows = 0;
    for (int i = 0; i < (*reader)->num_record_batches(); ++i) {
      auto batch = (*reader)->ReadRecordBatch(i);
      if (!batch.ok()) return Corrupt(path, batch.status().message());
      arrow::Status st = (*batch)->ValidateFull();
      if (!st.ok()) {
        return Corrupt(path, "record batch " + std::to_string(i) + ": " + st.message());
      }
      rows += (*batch)->num_rows();
      batches.push_back(*std::move(batch));
    }
    if (rows != expected_rows) {
      return Corrupt(path, "it has " + std::to_string(rows) +
                               " rows, the manifest says " +
                               std::to_string(expected_rows));
    }
    auto fragment = FragmentData::Make(std::move(batches));
    fragment->source = file->map();
    return fragment;
  }
  if (!blocks.ok()) return Corrupt(path, blocks.status().message());
  if (static_cast<int64_t>(blocks->size()) != (*reader)->num_record_batches()) {
    return Corrupt(path, "its footer lists " +
                             std::to_string((*reader)->num_record_batches()) +
                             " record batches, of which " +
                             std::to_string(blocks->size()) + " are valid");
  }

  // Every batch's metadata, in one round.
  std::vector<io::ByteRange> metadata;
  metadata.reserve(blocks->size());
  for (const IpcBlock& block : *blocks) {
    metadata.push_back({block.offset, block.metadata_length});
  }
  ARROW_RETURN_NOT_OK(file->Ensure(metadata));

  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  batches.reserve(blocks->size());
  int64_t rows = 0;
  for (size_t i = 0; i < blocks->size(); ++i) {
    const IpcBlock& block = (*blocks)[i];
    auto fail = [&](const std::string& why) {
      return Corrupt(path, "record batch " + std::to_string(i) + ": " + why);
    };
    // An encapsulated message: 0xFFFFFFFF, the flatbuffer's length, the flatbuffer.
    const uint8_t* at = data + block.offset;
    int64_t prefix = 4;
    uint32_t word;
    std::memcpy(&word, at, 4);
    if (word == 0xFFFFFFFFu) {
      prefix = 8;
      std::memcpy(&word, at + 4, 4);
    }
    const int64_t flatbuffer_length = static_cast<int32_t>(word);
    if (flatbuffer_length <= 0 || flatbuffer_length > block.metadata_length - prefix) {
      return fail("its metadata length is out of range");
    }
    ARROW_ASSIGN_OR_RAISE(auto flatbuffer,
                          file->Slice(block.offset + prefix, flatbuffer_length));
    const int64_t body_begin = block.offset + block.metadata_length;
    ARROW_ASSIGN_OR_RAISE(auto body, file->Slice(body_begin, block.body_length));
    auto message = arrow::ipc::Message::Open(flatbuffer, body);
    if (!message.ok()) return fail(message.status().message());
    if ((*message)->type() != arrow::ipc::MessageType::RECORD_BATCH) {
      return fail("it is not a record batch message");
    }
    auto batch = arrow::ipc::ReadRecordBatch(**message, file_schema, nullptr,
                                             FragmentReadOptions());
    if (!batch.ok()) return fail(batch.status().message());
    for (const auto& column : (*batch)->column_data()) {
      if (column->length != (*batch)->num_rows()) {
        return fail("a column's length differs from the batch's");
      }
      arrow::Status st =
          CheckLayout(*file, *column, body_begin, body_begin + block.body_length);
      if (!st.ok()) return fail(st.message());
    }
    rows += (*batch)->num_rows();
    batches.push_back(*std::move(batch));
  }
  if (rows != expected_rows) {
    return Corrupt(path, "it has " + std::to_string(rows) + " rows, the manifest says " +
                             std::to_string(expected_rows));
  }
  auto fragment = FragmentData::Make(std::move(batches));
  fragment->source = file->map();
  fragment->cached = file;
  return fragment;
}

// -- RowFetchPlan
// ---------------------------------------------------------------------------

void RowFetchPlan::AddRows(io::CachedFile* file,
                           const std::shared_ptr<arrow::ArrayData>& array,
                           std::span<const int64_t> rows) {
  if (rows.empty()) return;
  Item item{file, array.get(), {}};
  item.rows.reserve(rows.size());
  for (int64_t r : rows) item.rows.emplace_back(r, r + 1);
  keep_.push_back(array);
  items_.push_back(std::move(item));
}

void RowFetchPlan::AddAll(io::CachedFile* file,
                          const std::shared_ptr<arrow::ArrayData>& array) {
  if (array->length == 0) return;
  keep_.push_back(array);
  items_.push_back(Item{file, array.get(), {{0, array->length}}});
}

arrow::Status RowFetchPlan::AddRange(io::CachedFile* file, const arrow::Buffer& buffer,
                                     int64_t begin, int64_t end) {
  if (end <= begin) return arrow::Status::OK();
  auto at = file->OffsetOf(buffer.data());
  if (!at || begin < 0 || end > buffer.size()) {
    return arrow::Status::Invalid("Bytes [", begin, ", ", end,
                                  ") are outside their buffer in '", file->name(), "'");
  }
  auto it = std::find_if(ranges_.begin(), ranges_.end(),
                         [&](const auto& entry) { return entry.first == file; });
  if (it == ranges_.end()) {
    ranges_.emplace_back(file, std::vector<io::ByteRange>{});
    it = ranges_.end() - 1;
  }
  // Consecutive rows give touching ranges: extend rather than append.
  auto& list = it->second;
  const int64_t offset = *at + begin;
  if (!list.empty() && list.back().offset + list.back().length >= offset &&
      list.back().offset <= offset) {
    list.back().length =
        std::max(list.back().offset + list.back().length, offset + (end - begin)) -
        list.back().offset;
  } else {
    list.push_back({offset, end - begin});
  }
  return arrow::Status::OK();
}

namespace {

// Sorts and merges [begin, end) intervals.
void Normalize(std::vector<std::pair<int64_t, int64_t>>* rows) {
  if (!std::is_sorted(rows->begin(), rows->end())) std::sort(rows->begin(), rows->end());
  size_t out = 0;
  for (size_t i = 0; i < rows->size(); ++i) {
    if (out > 0 && (*rows)[i].first <= (*rows)[out - 1].second) {
      (*rows)[out - 1].second = std::max((*rows)[out - 1].second, (*rows)[i].second);
    } else {
      (*rows)[out++] = (*rows)[i];
    }
  }
  rows->resize(out);
}

template <typename Offset>
arrow::Status ReadOffsets(const io::CachedFile& file, const arrow::ArrayData& a,
                          const std::vector<std::pair<int64_t, int64_t>>& rows,
                          int64_t limit,
                          std::vector<std::pair<int64_t, int64_t>>* values) {
  // Indexed by physical row: the buffer's start, not the array's offset.
  const Offset* offsets = a.GetValues<Offset>(1, /*absolute_offset=*/0);
  for (auto [begin, end] : rows) {
    // Every offset in the interval, since a gather reads each row's pair.
    for (int64_t r = begin; r < end; ++r) {
      const int64_t lo = offsets[r];
      const int64_t hi = offsets[r + 1];
      if (lo < 0 || hi < lo || hi > limit) {
        return WithErrorKind(
            arrow::Status::Invalid("Corrupt fragment file '", file.name(), "': row ", r,
                                   " of a ", a.type->ToString(), " array has offsets ",
                                   lo, " to ", hi, " outside its ", limit, " values"),
            ErrorKind::kCorruption);
      }
    }
    values->emplace_back(offsets[begin], offsets[end]);
  }
  return arrow::Status::OK();
}

}  // namespace

arrow::Status RowFetchPlan::Expand(const Item& item, bool offsets_fetched,
                                   std::vector<Item>* next) {
  const arrow::ArrayData& a = *item.array;
  const arrow::DataType& type = *a.type;
  const int64_t o = a.offset;
  if (!offsets_fetched && a.buffers.size() > 0 && a.buffers[0] != nullptr) {
    for (auto [begin, end] : item.rows) {
      ARROW_RETURN_NOT_OK(
          AddRange(item.file, *a.buffers[0], (o + begin) / 8, (o + end - 1) / 8 + 1));
    }
  }
  switch (type.id()) {
    case arrow::Type::NA:
      return arrow::Status::OK();
    case arrow::Type::FIXED_SIZE_LIST: {
      const int64_t n =
          arrow::internal::checked_cast<const arrow::FixedSizeListType&>(type)
              .list_size();
      Item child{item.file, a.child_data[0].get(), {}};
      for (auto [begin, end] : item.rows) {
        child.rows.emplace_back((o + begin) * n, (o + end) * n);
      }
      return Expand(child, false, next);
    }
    case arrow::Type::STRUCT:
      for (const auto& data : a.child_data) {
        Item child{item.file, data.get(), {}};
        for (auto [begin, end] : item.rows) child.rows.emplace_back(o + begin, o + end);
        ARROW_RETURN_NOT_OK(Expand(child, false, next));
      }
      return arrow::Status::OK();
    default:
      break;
  }
  if (!IsOffsetType(type.id())) {
    const int64_t bits = BitWidth(type);
    for (auto [begin, end] : item.rows) {
      ARROW_RETURN_NOT_OK(AddRange(item.file, *a.buffers[1], (o + begin) * bits / 8,
                                   ((o + end) * bits + 7) / 8));
    }
    return arrow::Status::OK();
  }
  const bool large = IsLargeOffsets(type.id());
  const int64_t width = large ? 8 : 4;
  if (!offsets_fetched) {
    // The offsets first; their values next round.
    Item later{item.file, item.array, {}};
    for (auto [begin, end] : item.rows) {
      ARROW_RETURN_NOT_OK(
          AddRange(item.file, *a.buffers[1], (o + begin) * width, (o + end + 1) * width));
      later.rows.emplace_back(o + begin, o + end);  // physical from here on
    }
    next->push_back(std::move(later));
    return arrow::Status::OK();
  }
  // item.rows are physical indexes into the offsets now.
  const bool is_list =
      type.id() == arrow::Type::LIST || type.id() == arrow::Type::LARGE_LIST;
  const int64_t limit =
      is_list
          ? a.child_data[0]->length
          : (a.buffers.size() > 2 && a.buffers[2] != nullptr ? a.buffers[2]->size() : 0);
  std::vector<std::pair<int64_t, int64_t>> values;
  ARROW_RETURN_NOT_OK(
      large ? ReadOffsets<int64_t>(*item.file, a, item.rows, limit, &values)
            : ReadOffsets<int32_t>(*item.file, a, item.rows, limit, &values));
  if (is_list) {
    Item child{item.file, a.child_data[0].get(), std::move(values)};
    Normalize(&child.rows);
    return Expand(child, false, next);
  }
  for (auto [begin, end] : values) {
    ARROW_RETURN_NOT_OK(AddRange(item.file, *a.buffers[2], begin, end));
  }
  return arrow::Status::OK();
}

arrow::Status RowFetchPlan::Run() {
  std::vector<Item> current = std::move(items_);
  items_.clear();
  std::vector<Item> deferred;
  for (auto& item : current) Normalize(&item.rows);
  while (!current.empty() || !deferred.empty()) {
    ranges_.clear();
    std::vector<Item> next;
    for (const Item& item : current) ARROW_RETURN_NOT_OK(Expand(item, false, &next));
    for (const Item& item : deferred) ARROW_RETURN_NOT_OK(Expand(item, true, &next));
    ARROW_RETURN_NOT_OK(io::CachedFile::EnsureMany(ranges_));
    current.clear();
    deferred = std::move(next);
  }
  keep_.clear();
  return arrow::Status::OK();
}

}  // namespace riffledb::format
