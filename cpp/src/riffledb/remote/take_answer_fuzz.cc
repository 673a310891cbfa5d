// Fuzz target: what riffledb's client does with a server's answer to a take
// (remote/client/remote_take_source.h): ReadQueryAnswer on arbitrary bytes, then
// AnswerAsAsked (a riffledb server's answer) and OrderTakeAnswer for a few keys. A server
// (or whatever answers on its address) controls every byte: no input may crash, read past
// the answer's buffers, or return a batch whose row count is not the keys'.
//
// Input: byte 0: bit 0 the answer is an IPC stream (else a file), bit 1 a take by row id;
// byte 1: the number of keys k (mod 16); the next k bytes: the keys; the rest: the body.
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "riffledb/remote/client/remote_take_source.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace riffledb::remote;  // NOLINT(build/namespaces): a fuzz entry point
  if (size < 2) return 0;
  const bool stream = (data[0] & 1) != 0;
  const bool by_row_id = (data[0] & 2) != 0;
  const size_t count = std::min<size_t>(data[1] % 16, size - 2);
  std::vector<uint64_t> keys(data + 2, data + 2 + count);
  const std::string body(reinterpret_cast<const char*>(data) + 2 + count,
                         size - 2 - count);
  std::optional<std::string> content_type;
  if (stream) content_type = "application/vnd.apache.arrow.stream";
  auto answer = ReadQueryAnswer(body, content_type, "table 'fuzz'");
  if (!answer.ok()) {
    if (!answer.status().IsInvalid()) std::abort();
    return 0;
  }
  auto as_asked = AnswerAsAsked(*answer, keys, by_row_id, "table 'fuzz'");
  if (as_asked.ok() && *as_asked != nullptr &&
      (*as_asked)->num_rows() != static_cast<int64_t>(keys.size())) {
    std::abort();
  }
  const KeyRanks ranks = RankKeys(keys);
  if (ranks.rank.size() != keys.size()) std::abort();
  for (size_t i = 0; i < keys.size(); ++i) {
    if (ranks.unique[ranks.rank[i]] != keys[i]) std::abort();
  }
  auto rows = OrderTakeAnswer(*answer, keys, ranks, by_row_id, "table 'fuzz'");
  if (rows.ok()) {
    if ((*rows)->num_rows() != static_cast<int64_t>(keys.size())) std::abort();
    if (!(*rows)->ValidateFull().ok()) std::abort();
  }
  return 0;
}
