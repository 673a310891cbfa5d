// Gathering rows from a table's chunks into a new array, in the requested order.
#pragma once

#include <arrow/array.h>
#include <arrow/result.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace riffledb {

class ThreadPool;

/// Where one requested row lives: chunk index and row within that chunk.
struct ChunkRow {
  int32_t chunk;
  int64_t row;
};

/// The type GatherRows returns for chunks of `type`: `type` itself, except that with
/// `binary_views` binary and large_binary become binary_view, and string and
/// large_string become string_view.
std::shared_ptr<arrow::DataType> GatheredType(
    const std::shared_ptr<arrow::DataType>& type, bool binary_views);

/// Whether `type` is, or holds, a string_view or binary_view (Arrow's Take and Filter
/// have no kernel for those: TakeRows reads them).
bool ContainsView(const arrow::DataType& type);

/// Whether `type` is, or holds, a dictionary (IPC answers of such columns may carry a
/// dictionary per batch).
bool HasDictionary(const arrow::DataType& type);

/// Returns an array whose i-th value is `chunks[refs[i].chunk]` at `refs[i].row`.
///
/// Fixed-width values (numbers, temporals, decimals, fixed-size binary, and fixed-size
/// lists of those: embeddings) and binary/string values are copied straight from the
/// chunks' buffers (for a memory-mapped table: one copy from the map into the result),
/// split across `pool` threads when the copy is large. Other types gather per chunk with
/// Arrow's Take and are then put in request order. `refs` must be in range (callers
/// validate).
///
/// With `binary_views`, top-level binary/string columns (32- or 64-bit offsets) come
/// back as binary_view/string_view without copying their values: a value of at most 12
/// bytes is inlined in its view, a longer one references a data buffer that IS the
/// chunk's value buffer (the same arrow::Buffer, so for a memory-mapped table a slice of
/// the map, kept alive by the returned array). Only chunks that a long value references
/// become data buffers. A view's offset is an int32: a chunk value buffer larger than
/// 2 GiB is split into zero-copy slices starting every 2 GiB (a value belongs to the
/// slice its first byte falls in; the slice extends to the end of the last value taken
/// from it), still without copying. A single value larger than 2 GiB - 1 byte cannot be
/// a view at all: CapacityError naming the chunk and row. Nested binary/string values
/// (lists, structs) keep their plain types.
arrow::Result<std::shared_ptr<arrow::Array>> GatherRows(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs, ThreadPool* pool, bool binary_views = false);

/// The rows `rows` of `array` (in range, in any order, repeats allowed): GatherRows of
/// one chunk. Unlike Arrow's Take, it reads binary_view/string_view columns (compacted:
/// the result holds its own rows' bytes only).
arrow::Result<std::shared_ptr<arrow::Array>> TakeRows(
    const std::shared_ptr<arrow::Array>& array, std::span<const int64_t> rows);

}  // namespace riffledb
