#include "riffledb/table/gather.h"

#include <arrow/array/concatenate.h>
#include <arrow/buffer.h>
#include <arrow/compute/api_vector.h>
#include <arrow/compute/cast.h>
#include <arrow/util/binary_view_util.h>
#include <arrow/util/bit_util.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "riffledb/util/thread_pool.h"

namespace riffledb {

namespace {

// Copies larger than this are split across the pool's threads.
constexpr int64_t kParallelCopyBytes = int64_t{1} << 20;

// Rows ahead of the copy whose source is prefetched. A random gather from a large map is
// bound by memory latency (a TLB miss and a cache miss per row), not by instructions;
// touching a few rows ahead keeps several misses in flight instead of one.
constexpr int64_t kPrefetchRows = 8;

// Runs fn(begin, end) over [0, n) in contiguous pieces, in parallel when `bytes` is
// large. A template, so the common serial case calls `fn` directly (no std::function).
template <typename Fn>
arrow::Status ForRanges(ThreadPool* pool, int64_t n, int64_t bytes, const Fn& fn) {
  int64_t pieces = 1;
  if (pool != nullptr && bytes >= kParallelCopyBytes) {
    pieces = std::min<int64_t>(pool->num_threads(), std::max<int64_t>(1, n / 64));
  }
  if (pieces <= 1) {
    fn(0, n);
    return arrow::Status::OK();
  }
  return pool->ParallelFor(pieces, [&](int64_t piece) {
    fn(n * piece / pieces, n * (piece + 1) / pieces);
    return arrow::Status::OK();
  });
}

// Bytes per value of a fixed-width layout copied with memcpy: numbers, temporals,
// decimals, fixed-size binary, and (nested) fixed-size lists of those. 0 when not
// applicable.
int64_t FixedWidthBytes(const arrow::DataType& type) {
  switch (type.id()) {
    case arrow::Type::BOOL:
    case arrow::Type::NA:
    case arrow::Type::DICTIONARY:
    case arrow::Type::EXTENSION:
      return 0;
    case arrow::Type::FIXED_SIZE_LIST: {
      const auto& list = static_cast<const arrow::FixedSizeListType&>(type);
      return list.list_size() * FixedWidthBytes(*list.value_type());
    }
    default:
      break;
  }
  // DataType::bit_width() is -1 for every type that is not fixed-width (extension and
  // dictionary types, which forward it, are excluded above): no dynamic_cast needed.
  const int bits = type.bit_width();
  if (bits <= 0 || bits % 8 != 0) return 0;
  return bits / 8;
}

// Address of row 0's value bytes in a fixed-width layout, or nullptr when a nested child
// has nulls of its own (then the memcpy path does not apply).
const uint8_t* FixedWidthBase(const arrow::ArrayData& data, int64_t width) {
  if (data.type->id() == arrow::Type::FIXED_SIZE_LIST) {
    const auto& child = *data.child_data[0];
    if (child.GetNullCount() != 0) return nullptr;
    const int64_t list_size =
        static_cast<const arrow::FixedSizeListType&>(*data.type).list_size();
    const uint8_t* child_base =
        FixedWidthBase(child, list_size == 0 ? 0 : width / list_size);
    if (child_base == nullptr && width != 0) return nullptr;
    return child_base == nullptr ? nullptr : child_base + data.offset * width;
  }
  if (data.buffers.size() < 2 || data.buffers[1] == nullptr) {
    static const uint8_t kEmpty = 0;
    return data.length == 0 ? &kEmpty : nullptr;
  }
  return data.buffers[1]->data() + data.offset * width;
}

std::shared_ptr<arrow::ArrayData> MakeFixedWidthData(
    const std::shared_ptr<arrow::DataType>& type, int64_t length,
    std::shared_ptr<arrow::Buffer> values, std::shared_ptr<arrow::Buffer> validity,
    int64_t null_count) {
  if (type->id() == arrow::Type::FIXED_SIZE_LIST) {
    const auto& list = static_cast<const arrow::FixedSizeListType&>(*type);
    auto child = MakeFixedWidthData(list.value_type(), length * list.list_size(),
                                    std::move(values), nullptr, 0);
    return arrow::ArrayData::Make(type, length, {std::move(validity)}, {std::move(child)},
                                  null_count);
  }
  return arrow::ArrayData::Make(type, length, {std::move(validity), std::move(values)},
                                null_count);
}

bool AnyNulls(const std::vector<std::shared_ptr<arrow::Array>>& chunks) {
  for (const auto& chunk : chunks) {
    if (chunk->null_count() != 0) return true;
  }
  return false;
}

// The validity bitmap of the gathered rows, or nullptr when no chunk has nulls.
arrow::Status GatherValidity(const std::vector<std::shared_ptr<arrow::Array>>& chunks,
                             std::span<const ChunkRow> refs,
                             std::shared_ptr<arrow::Buffer>* out, int64_t* null_count) {
  *out = nullptr;
  *null_count = 0;
  if (!AnyNulls(chunks)) return arrow::Status::OK();
  const auto n = static_cast<int64_t>(refs.size());
  ARROW_ASSIGN_OR_RAISE(auto bitmap, arrow::AllocateEmptyBitmap(n));
  uint8_t* bits = bitmap->mutable_data();
  int64_t valid = 0;
  for (int64_t i = 0; i < n; ++i) {
    const auto& data = *chunks[refs[i].chunk]->data();
    const uint8_t* source = data.buffers[0] ? data.buffers[0]->data() : nullptr;
    if (source == nullptr || arrow::bit_util::GetBit(source, data.offset + refs[i].row)) {
      arrow::bit_util::SetBit(bits, i);
      ++valid;
    }
  }
  *null_count = n - valid;
  *out = std::move(bitmap);
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::Array>> GatherFixedWidth(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs, int64_t width, ThreadPool* pool) {
  // Per-chunk base addresses, on the stack for the usual few dozen chunks: a small take
  // should not pay a heap allocation per column for them.
  constexpr size_t kInlineChunks = 64;
  const uint8_t* inline_bases[kInlineChunks];
  std::vector<const uint8_t*> heap_bases;
  const uint8_t** bases = inline_bases;
  if (chunks.size() > kInlineChunks) {
    heap_bases.resize(chunks.size());
    bases = heap_bases.data();
  }
  for (size_t c = 0; c < chunks.size(); ++c) {
    bases[c] = FixedWidthBase(*chunks[c]->data(), width);
    if (bases[c] == nullptr) return nullptr;  // not applicable: caller falls back
  }
  const auto n = static_cast<int64_t>(refs.size());
  ARROW_ASSIGN_OR_RAISE(auto values, arrow::AllocateBuffer(n * width));
  uint8_t* out = values->mutable_data();
  auto source = [&](int64_t i) { return bases[refs[i].chunk] + refs[i].row * width; };
  ARROW_RETURN_NOT_OK(ForRanges(pool, n, n * width, [&](int64_t begin, int64_t end) {
    switch (width) {  // constant widths let the compiler emit plain loads and stores
      case 4:
        for (int64_t i = begin; i < end; ++i) {
          if (i + kPrefetchRows < end) __builtin_prefetch(source(i + kPrefetchRows));
          std::memcpy(out + i * 4, source(i), 4);
        }
        break;
      case 8:
        for (int64_t i = begin; i < end; ++i) {
          if (i + kPrefetchRows < end) __builtin_prefetch(source(i + kPrefetchRows));
          std::memcpy(out + i * 8, source(i), 8);
        }
        break;
      default:
        for (int64_t i = begin; i < end; ++i) {
          if (i + kPrefetchRows < end) {
            // First and last byte: a wide value may straddle a page boundary.
            const uint8_t* ahead = source(i + kPrefetchRows);
            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + width - 1);
          }
          std::memcpy(out + i * width, source(i), width);
        }
    }
  }));
  std::shared_ptr<arrow::Buffer> validity;
  int64_t null_count = 0;
  ARROW_RETURN_NOT_OK(GatherValidity(chunks, refs, &validity, &null_count));
  return arrow::MakeArray(MakeFixedWidthData(chunks[0]->type(), n, std::move(values),
                                             std::move(validity), null_count));
}

template <typename Offset>
arrow::Result<std::shared_ptr<arrow::Array>> GatherBinary(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs, ThreadPool* pool) {
  const auto n = static_cast<int64_t>(refs.size());
  std::vector<const Offset*> offsets(chunks.size());
  std::vector<const uint8_t*> data(chunks.size());
  for (size_t c = 0; c < chunks.size(); ++c) {
    const auto& array = *chunks[c]->data();
    offsets[c] = array.GetValues<Offset>(1);
    data[c] = array.buffers[2] ? array.buffers[2]->data() : nullptr;
  }
  ARROW_ASSIGN_OR_RAISE(auto out_offsets,
                        arrow::AllocateBuffer((n + 1) * sizeof(Offset)));
  auto* out_off = reinterpret_cast<Offset*>(out_offsets->mutable_data());
  int64_t total = 0;
  out_off[0] = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Offset* o = offsets[refs[i].chunk];
    total += o[refs[i].row + 1] - o[refs[i].row];
    if (total > std::numeric_limits<Offset>::max()) {
      return arrow::Status::CapacityError(
          "Gathered binary data exceeds the 2 GiB limit of its 32-bit offsets; take "
          "fewer "
          "rows at a time or store the column as large_binary/large_string");
    }
    out_off[i + 1] = static_cast<Offset>(total);
  }
  ARROW_ASSIGN_OR_RAISE(auto values, arrow::AllocateBuffer(total));
  uint8_t* out = values->mutable_data();
  ARROW_RETURN_NOT_OK(ForRanges(pool, n, total, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Offset* o = offsets[refs[i].chunk];
      const int64_t length = o[refs[i].row + 1] - o[refs[i].row];
      if (length > 0) {
        std::memcpy(out + out_off[i], data[refs[i].chunk] + o[refs[i].row], length);
      }
    }
  }));
  std::shared_ptr<arrow::Buffer> validity;
  int64_t null_count = 0;
  ARROW_RETURN_NOT_OK(GatherValidity(chunks, refs, &validity, &null_count));
  return arrow::MakeArray(arrow::ArrayData::Make(
      chunks[0]->type(), n,
      {std::move(validity), std::move(out_offsets), std::move(values)}, null_count));
}

// A view's offset into its data buffer is an int32: a chunk value buffer larger than
// this is referenced through slices that start every kViewWindowBytes.
constexpr int64_t kViewWindowBytes = int64_t{1} << 31;
constexpr int64_t kMaxViewBytes = std::numeric_limits<int32_t>::max();

template <typename Offset>
arrow::Result<std::shared_ptr<arrow::Array>> GatherBinaryViews(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs, std::shared_ptr<arrow::DataType> type) {
  using View = arrow::BinaryViewType::c_type;
  const auto n = static_cast<int64_t>(refs.size());
  std::shared_ptr<arrow::Buffer> validity;
  int64_t null_count = 0;
  ARROW_RETURN_NOT_OK(GatherValidity(chunks, refs, &validity, &null_count));
  const uint8_t* valid = validity ? validity->data() : nullptr;

  // Data buffers are made on first reference: window_index[c][w] is the data buffer of
  // chunk c's window w (-1: not referenced yet), and each buffer remembers its source
  // and the end of the last value it must cover.
  struct Source {
    int32_t chunk;
    int64_t window;
    int64_t end;  // relative to the window's start
  };
  std::vector<Source> sources;
  std::vector<std::vector<int32_t>> window_index(chunks.size());

  ARROW_ASSIGN_OR_RAISE(auto views, arrow::AllocateBuffer(n * sizeof(View)));
  auto* out = reinterpret_cast<View*>(views->mutable_data());
  for (int64_t i = 0; i < n; ++i) {
    if (valid != nullptr && !arrow::bit_util::GetBit(valid, i)) {
      out[i] = View{};  // size 0, zeroed as the format asks of inline bytes
      continue;
    }
    const auto& data = *chunks[refs[i].chunk]->data();
    const Offset* o = data.GetValues<Offset>(1);
    const int64_t start = o[refs[i].row];
    const int64_t size = o[refs[i].row + 1] - start;
    if (size == 0) {
      out[i] = View{};
      continue;
    }
    const uint8_t* value = data.buffers[2]->data() + start;
    if (size <= arrow::BinaryViewType::kInlineSize) {
      out[i] = arrow::util::ToInlineBinaryView(value, static_cast<int32_t>(size));
      continue;
    }
    if (size > kMaxViewBytes) {
      return arrow::Status::CapacityError(
          "Value at row ", refs[i].row, " of chunk ", refs[i].chunk, " is ", size,
          " bytes; a binary/string view holds at most ", kMaxViewBytes,
          " bytes: take this column without binary views");
    }
    // A buffer that fits an int32 offset is used whole (window 0 is the buffer itself).
    const bool windowed = data.buffers[2]->size() > kMaxViewBytes;
    const int64_t window = windowed ? start / kViewWindowBytes : 0;
    auto& index = window_index[refs[i].chunk];
    if (index.size() <= static_cast<size_t>(window)) index.resize(window + 1, -1);
    if (index[window] < 0) {
      index[window] = static_cast<int32_t>(sources.size());
      sources.push_back({refs[i].chunk, window, 0});
    }
    const int64_t local = start - window * kViewWindowBytes;
    Source& source = sources[index[window]];
    source.end = std::max(source.end, local + size);
    out[i] = arrow::util::ToNonInlineBinaryView(
        value, static_cast<int32_t>(size), index[window], static_cast<int32_t>(local));
  }

  arrow::BufferVector buffers = {std::move(validity), std::move(views)};
  for (const Source& source : sources) {
    const auto& values = chunks[source.chunk]->data()->buffers[2];
    if (values->size() <= kMaxViewBytes) {
      buffers.push_back(values);
    } else {
      buffers.push_back(
          arrow::SliceBuffer(values, source.window * kViewWindowBytes, source.end));
    }
  }
  return arrow::MakeArray(
      arrow::ArrayData::Make(std::move(type), n, std::move(buffers), null_count));
}

// binary_view/string_view chunks: the views, with each value longer than a view inlines
// copied into a data buffer of the result's own, so that the result holds the bytes of
// its rows only, not every data buffer of the chunks (an IPC answer would send those
// whole). Arrow's Take has no kernel for view types.
arrow::Result<std::shared_ptr<arrow::Array>> GatherViews(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs) {
  using View = arrow::BinaryViewType::c_type;
  const auto n = static_cast<int64_t>(refs.size());
  std::shared_ptr<arrow::Buffer> validity;
  int64_t null_count = 0;
  ARROW_RETURN_NOT_OK(GatherValidity(chunks, refs, &validity, &null_count));
  const uint8_t* valid = validity ? validity->data() : nullptr;
  auto view_of = [&](int64_t i) -> const View& {
    return chunks[refs[i].chunk]->data()->GetValues<View>(1)[refs[i].row];
  };
  // The long values' bytes, in data buffers of at most kMaxViewBytes (a view's offset is
  // an int32): sizes first, then one allocation each.
  std::vector<int64_t> sizes{0};
  for (int64_t i = 0; i < n; ++i) {
    if (valid != nullptr && !arrow::bit_util::GetBit(valid, i)) continue;
    const View& view = view_of(i);
    if (view.is_inline()) continue;
    if (sizes.back() + view.size() > kMaxViewBytes) sizes.push_back(0);
    sizes.back() += view.size();
  }
  arrow::BufferVector buffers(2);
  buffers[0] = std::move(validity);
  ARROW_ASSIGN_OR_RAISE(buffers[1], arrow::AllocateBuffer(n * sizeof(View)));
  std::vector<uint8_t*> data;
  for (const int64_t size : sizes) {
    if (size == 0) continue;
    ARROW_ASSIGN_OR_RAISE(auto buffer, arrow::AllocateBuffer(size));
    data.push_back(buffer->mutable_data());
    buffers.push_back(std::move(buffer));
  }
  auto* out = reinterpret_cast<View*>(buffers[1]->mutable_data());
  int32_t index = 0;
  int64_t used = 0;  // bytes of data buffer `index` written
  for (int64_t i = 0; i < n; ++i) {
    if (valid != nullptr && !arrow::bit_util::GetBit(valid, i)) {
      out[i] = View{};  // size 0, zeroed as the format asks of inline bytes
      continue;
    }
    const View& view = view_of(i);
    if (view.is_inline()) {
      out[i] = view;
      continue;
    }
    const auto& source = *chunks[refs[i].chunk]->data();
    const uint8_t* value =
        source.buffers[2 + view.ref.buffer_index]->data() + view.ref.offset;
    if (used + view.size() > kMaxViewBytes) {
      ++index;
      used = 0;
    }
    std::memcpy(data[index] + used, value, static_cast<size_t>(view.size()));
    out[i] = arrow::util::ToNonInlineBinaryView(data[index] + used, view.size(), index,
                                                static_cast<int32_t>(used));
    used += view.size();
  }
  return arrow::MakeArray(
      arrow::ArrayData::Make(chunks[0]->type(), n, std::move(buffers), null_count));
}

arrow::Result<std::shared_ptr<arrow::Array>> GatherBoolean(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs) {
  const auto n = static_cast<int64_t>(refs.size());
  ARROW_ASSIGN_OR_RAISE(auto values, arrow::AllocateEmptyBitmap(n));
  uint8_t* out = values->mutable_data();
  for (int64_t i = 0; i < n; ++i) {
    const auto& data = *chunks[refs[i].chunk]->data();
    if (arrow::bit_util::GetBit(data.buffers[1]->data(), data.offset + refs[i].row)) {
      arrow::bit_util::SetBit(out, i);
    }
  }
  std::shared_ptr<arrow::Buffer> validity;
  int64_t null_count = 0;
  ARROW_RETURN_NOT_OK(GatherValidity(chunks, refs, &validity, &null_count));
  return arrow::MakeArray(arrow::ArrayData::Make(
      chunks[0]->type(), n, {std::move(validity), std::move(values)}, null_count));
}

// `type` with every string_view/binary_view in it made large_string/large_binary (for
// Arrow's Take, which has no kernel for views, nested in a list or struct or not).
std::shared_ptr<arrow::DataType> WithoutViews(
    const std::shared_ptr<arrow::DataType>& type) {
  if (type->id() == arrow::Type::STRING_VIEW) return arrow::large_utf8();
  if (type->id() == arrow::Type::BINARY_VIEW) return arrow::large_binary();
  if (!ContainsView(*type)) return type;
  arrow::FieldVector fields;
  for (const auto& field : type->fields()) {
    fields.push_back(field->WithType(WithoutViews(field->type())));
  }
  switch (type->id()) {
    case arrow::Type::LIST:
      return arrow::list(fields[0]);
    case arrow::Type::LARGE_LIST:
      return arrow::large_list(fields[0]);
    case arrow::Type::FIXED_SIZE_LIST:
      return arrow::fixed_size_list(
          fields[0], static_cast<const arrow::FixedSizeListType&>(*type).list_size());
    case arrow::Type::STRUCT:
      return arrow::struct_(fields);
    default:
      return type;  // a map, a union, ...: Take says what it cannot do
  }
}

arrow::Result<std::shared_ptr<arrow::Array>> GatherWithTakeOf(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs);

// Any type: Take from each chunk, concatenate, and restore the requested order. Views
// nested in a list or a struct are taken as their large_ types and cast back.
arrow::Result<std::shared_ptr<arrow::Array>> GatherWithTake(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs) {
  const auto& type = chunks[0]->type();
  const auto plain = WithoutViews(type);
  if (plain == type) return GatherWithTakeOf(chunks, refs);
  std::vector<std::shared_ptr<arrow::Array>> cast;
  for (const auto& chunk : chunks) {
    ARROW_ASSIGN_OR_RAISE(cast.emplace_back(), arrow::compute::Cast(*chunk, plain));
  }
  ARROW_ASSIGN_OR_RAISE(auto taken, GatherWithTakeOf(cast, refs));
  return arrow::compute::Cast(*taken, type);
}

arrow::Result<std::shared_ptr<arrow::Array>> GatherWithTakeOf(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs) {
  const auto n = static_cast<int64_t>(refs.size());
  // Requests grouped by chunk, keeping request order within a chunk (counting sort).
  std::vector<int64_t> per_chunk(chunks.size() + 1, 0);
  for (const auto& ref : refs) ++per_chunk[ref.chunk + 1];
  for (size_t c = 0; c < chunks.size(); ++c) per_chunk[c + 1] += per_chunk[c];
  std::vector<int64_t> fill(per_chunk.begin(), per_chunk.end() - 1);
  std::vector<int64_t> position(n);  // where request i lands in the concatenation
  std::vector<int64_t> local_rows(n);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t slot = fill[refs[i].chunk]++;
    position[i] = slot;
    local_rows[slot] = refs[i].row;
  }
  std::vector<std::shared_ptr<arrow::Array>> pieces;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const int64_t begin = per_chunk[c], end = per_chunk[c + 1];
    if (begin == end) continue;
    auto indices = std::make_shared<arrow::Int64Array>(
        end - begin, arrow::Buffer::Wrap(local_rows.data() + begin, end - begin));
    ARROW_ASSIGN_OR_RAISE(auto taken, arrow::compute::Take(*chunks[c], *indices));
    pieces.push_back(std::move(taken));
  }
  if (pieces.empty()) return arrow::MakeEmptyArray(chunks[0]->type());
  std::shared_ptr<arrow::Array> grouped = pieces[0];
  if (pieces.size() > 1) {
    ARROW_ASSIGN_OR_RAISE(grouped, arrow::Concatenate(pieces));
  }
  bool in_order = true;
  for (int64_t i = 0; i < n && in_order; ++i) in_order = position[i] == i;
  if (in_order) return grouped;
  auto order =
      std::make_shared<arrow::Int64Array>(n, arrow::Buffer::Wrap(position.data(), n));
  return arrow::compute::Take(*grouped, *order);
}

}  // namespace

bool ContainsView(const arrow::DataType& type) {
  if (type.id() == arrow::Type::STRING_VIEW || type.id() == arrow::Type::BINARY_VIEW) {
    return true;
  }
  return std::any_of(type.fields().begin(), type.fields().end(),
                     [](const auto& field) { return ContainsView(*field->type()); });
}

bool HasDictionary(const arrow::DataType& type) {
  if (type.id() == arrow::Type::DICTIONARY) return true;
  return std::any_of(type.fields().begin(), type.fields().end(),
                     [](const auto& field) { return HasDictionary(*field->type()); });
}

std::shared_ptr<arrow::DataType> GatheredType(
    const std::shared_ptr<arrow::DataType>& type, bool binary_views) {
  if (!binary_views) return type;
  switch (type->id()) {
    case arrow::Type::BINARY:
    case arrow::Type::LARGE_BINARY:
      return arrow::binary_view();
    case arrow::Type::STRING:
    case arrow::Type::LARGE_STRING:
      return arrow::utf8_view();
    default:
      return type;
  }
}

arrow::Result<std::shared_ptr<arrow::Array>> GatherRows(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs, ThreadPool* pool, bool binary_views) {
  if (chunks.empty()) {
    return arrow::Status::Invalid("GatherRows needs at least one chunk to know the type");
  }
  const auto& type = *chunks[0]->type();
  if (refs.empty()) {
    return arrow::MakeEmptyArray(GatheredType(chunks[0]->type(), binary_views));
  }
  if (binary_views) {
    switch (type.id()) {
      case arrow::Type::STRING:
      case arrow::Type::BINARY:
        return GatherBinaryViews<int32_t>(chunks, refs,
                                          GatheredType(chunks[0]->type(), true));
      case arrow::Type::LARGE_STRING:
      case arrow::Type::LARGE_BINARY:
        return GatherBinaryViews<int64_t>(chunks, refs,
                                          GatheredType(chunks[0]->type(), true));
      default:
        break;
    }
  }
  if (const int64_t width = FixedWidthBytes(type); width > 0) {
    ARROW_ASSIGN_OR_RAISE(auto out, GatherFixedWidth(chunks, refs, width, pool));
    if (out != nullptr) return out;
  }
  switch (type.id()) {
    case arrow::Type::BOOL:
      return GatherBoolean(chunks, refs);
    case arrow::Type::STRING:
    case arrow::Type::BINARY:
      return GatherBinary<int32_t>(chunks, refs, pool);
    case arrow::Type::LARGE_STRING:
    case arrow::Type::LARGE_BINARY:
      return GatherBinary<int64_t>(chunks, refs, pool);
    case arrow::Type::STRING_VIEW:
    case arrow::Type::BINARY_VIEW:
      return GatherViews(chunks, refs);
    default:
      return GatherWithTake(chunks, refs);
  }
}

arrow::Result<std::shared_ptr<arrow::Array>> TakeRows(
    const std::shared_ptr<arrow::Array>& array, std::span<const int64_t> rows) {
  std::vector<ChunkRow> refs(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) refs[i] = {0, rows[i]};
  return GatherRows({array}, refs, /*pool=*/nullptr);
}

}  // namespace riffledb
