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

/// Returns an array whose i-th value is `chunks[refs[i].chunk]` at `refs[i].row`.
///
/// Fixed-width values (numbers, temporals, decimals, fixed-size binary, and fixed-size
/// lists of those: embeddings) and binary/string values are copied straight from the
/// chunks' buffers (for a memory-mapped table: one copy from the map into the result),
/// split across `pool` threads when the copy is large. Other types gather per chunk with
/// Arrow's Take and are then put in request order. `refs` must be in range (callers
/// validate).
arrow::Result<std::shared_ptr<arrow::Array>> GatherRows(
    const std::vector<std::shared_ptr<arrow::Array>>& chunks,
    std::span<const ChunkRow> refs, ThreadPool* pool);

}  // namespace riffledb
