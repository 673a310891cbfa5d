// Arrow IPC bytes for tests: request bodies, and byte surgery on IPC data for tests of
// readers that take it from a peer.
#pragma once

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/compression.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace riffledb::testing {

/// `batches` (at least one) as an Arrow IPC stream, LZ4-compressed if `lz4` (as
/// LanceDB's client sends a create's or an insert's body). Throws on an Arrow error.
inline std::string IpcStream(
    const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches, bool lz4 = false) {
  auto check = [](const arrow::Status& st) {
    if (!st.ok()) throw std::runtime_error(st.ToString());
  };
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  auto options = arrow::ipc::IpcWriteOptions::Defaults();
  if (lz4) {
    options.codec =
        arrow::util::Codec::Create(arrow::Compression::LZ4_FRAME).ValueOrDie();
  }
  auto writer =
      arrow::ipc::MakeStreamWriter(sink, batches.front()->schema(), options).ValueOrDie();
  for (const auto& batch : batches) check(writer->WriteRecordBatch(*batch));
  check(writer->Close());
  return sink->Finish().ValueOrDie()->ToString();
}

/// `ipc` (a stream starting at `stream_start`: 0 for an IPC stream, 8 for a file) with
/// its first record batch's body 4 bytes later: its metadata length says 4 bytes more
/// and 4 zero bytes follow the metadata, so that every buffer of the batch starts at an
/// offset misaligned for 8-byte values. Empty if the stream does not start with a
/// schema message and a record batch message (continuation markers checked).
inline std::string WithMisalignedBatchBody(std::string ipc, size_t stream_start) {
  auto int32_at = [&](size_t at) {
    int32_t value = 0;
    std::memcpy(&value, ipc.data() + at, 4);
    return value;
  };
  const std::string marker = "\xff\xff\xff\xff";
  if (ipc.size() < stream_start + 8 || ipc.compare(stream_start, 4, marker) != 0)
    return {};
  const size_t message =
      stream_start + 8 + static_cast<size_t>(int32_at(stream_start + 4));
  if (ipc.size() < message + 8 || ipc.compare(message, 4, marker) != 0) return {};
  const int32_t metadata = int32_at(message + 4);
  const int32_t longer = metadata + 4;
  std::memcpy(ipc.data() + message + 4, &longer, 4);
  const size_t body = message + 8 + static_cast<size_t>(metadata);
  return ipc.substr(0, body) + std::string(4, '\0') + ipc.substr(body);
}

}  // namespace riffledb::testing
