// Fuzz target: one request to the REST service (service.h) as a client could send it,
// `METHOD TARGET\n` then the body (JSON or an Arrow IPC stream), against a memory
// database holding table `t` (ids 0..9). Every input must get a reply with a status of
// the protocol and a JSON error body when it fails; nothing may crash, also when a
// streamed answer (one of more than 64 bytes) is written out. The parsing helpers get
// the same bytes on their own, and a query body parsed with its filter lifted out must
// mean what it means parsed whole.
#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/writer.h>

#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "riffledb/remote/protocol.h"
#include "riffledb/remote/service.h"

namespace {

using riffledb::Database;
using riffledb::remote::BodyText;
using riffledb::remote::Reply;
using riffledb::remote::Service;

std::string TenRows() {
  arrow::Int64Builder ids;
  for (int64_t i = 0; i < 10; ++i) (void)ids.Append(i);
  auto batch =
      arrow::RecordBatch::Make(arrow::schema({arrow::field("id", arrow::int64())}), 10,
                               {ids.Finish().ValueOrDie()});
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  auto writer = arrow::ipc::MakeStreamWriter(sink, batch->schema()).ValueOrDie();
  if (!writer->WriteRecordBatch(*batch).ok() || !writer->Close().ok()) std::abort();
  return sink->Finish().ValueOrDie()->ToString();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kTable = TenRows();
  static const std::set<int> kStatuses = {200, 400, 404, 405, 413, 500, 501};
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t line_end = input.find('\n');
  const std::string_view line = input.substr(0, line_end);
  const std::string body(line_end == std::string_view::npos ? std::string_view()
                                                            : input.substr(line_end + 1));
  const size_t space = line.find(' ');
  const std::string_view method = line.substr(0, space);
  const std::string_view target =
      space == std::string_view::npos ? std::string_view() : line.substr(space + 1);

  (void)riffledb::remote::ParseRoute(target);
  // With its filter lifted out before the JSON parse or not, a body means the same.
  const auto lifted = riffledb::remote::ParseQueryRequest(body);
  const auto whole = riffledb::remote::internal::ParseQueryRequestWhole(body);
  if (lifted.ok() != whole.ok()) std::abort();
  if (lifted.ok() ? !(*lifted == *whole)
                  : lifted.status().ToString() != whole.status().ToString()) {
    std::abort();
  }
  (void)riffledb::remote::ParseReadRequest(body);
  (void)riffledb::remote::MatchTakeFilter(body);

  // A fresh database per input: creates, inserts and drops do not pile up.
  auto db = Database::Connect("memory://").ValueOrDie();
  // Small batches and buffer: answers of more than a few rows take the streaming path.
  riffledb::remote::ServiceOptions options;
  options.max_batch_rows = 4;
  options.max_buffered_answer_bytes = 64;
  Service service(db, options);
  if (service.Handle("POST", "/v1/table/t/create/", kTable).status != 200) std::abort();
  Reply reply = service.Handle(method, target, body);
  if (kStatuses.count(reply.status) == 0) std::abort();
  if (reply.status != 200 && BodyText(reply).rfind("{\"error\":", 0) != 0) {
    std::abort();
  }
  if (reply.stream != nullptr) {
    // Streamed answers may fail half-way (the transport then aborts), never crash.
    if (reply.status != 200 || !reply.body.empty()) std::abort();
    (void)reply.stream->WriteTo([](std::string_view) { return true; });
  }
  return 0;
}
