#include "riffledb/remote/client/remote_take_source.h"

#include <arrow/array/concatenate.h>
#include <arrow/buffer.h>
#include <arrow/compute/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/dictionary.h>
#include <arrow/ipc/message.h>
#include <arrow/ipc/reader.h>
#include <arrow/table.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <utility>

#include "riffledb/expr/projection.h"
#include "riffledb/table/gather.h"

namespace riffledb::remote {

namespace {

// What LanceDB's client sends as `k` for "no limit" (isize::MAX, spec §2.7).
constexpr int64_t kNoLimit = 9223372036854775807;
constexpr char kArrowStream[] = "application/vnd.apache.arrow.stream";

nlohmann::json BaseBody(const std::optional<uint64_t>& version,
                        const std::string& table_id) {
  nlohmann::json body;
  body["version"] = version ? nlohmann::json(*version) : nlohmann::json(nullptr);
  if (!table_id.empty()) body["table_id"] = table_id;
  body["prefilter"] = true;
  body["k"] = kNoLimit;
  body["vector"] = nlohmann::json::array();
  return body;
}

// Appends `column in (1,2,3)` to `out`: the spelling of LanceDB's clients up to 0.34,
// which every server and mock understands (spec §2.7). Room for the longest keys is
// reserved first: the digits are written in place, without a reallocation.
void AppendInList(const char* column, std::span<const uint64_t> keys, std::string* out) {
  constexpr size_t kMaxDigits = 20;  // of a uint64
  constexpr std::string_view kIn = " in (";
  const std::string_view name(column);
  const size_t start = out->size();
  out->resize(start + name.size() + kIn.size() + keys.size() * (kMaxDigits + 1) + 1);
  char* p = out->data() + start;
  p = std::copy(name.begin(), name.end(), p);
  p = std::copy(kIn.begin(), kIn.end(), p);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) *p++ = ',';
    p = std::to_chars(p, p + kMaxDigits, keys[i]).ptr;
  }
  *p++ = ')';
  out->resize(static_cast<size_t>(p - out->data()));
}

// The column `name` of `rows` as a uint64 array.
arrow::Result<std::shared_ptr<arrow::UInt64Array>> KeyColumn(
    const arrow::RecordBatch& rows, const std::string& name) {
  std::shared_ptr<arrow::Array> array = rows.GetColumnByName(name);
  if (array == nullptr) {
    return arrow::Status::Invalid("The server's answer to a take has no column '", name,
                                  "'");
  }
  if (array->type_id() != arrow::Type::UINT64) {
    ARROW_ASSIGN_OR_RAISE(auto cast, arrow::compute::Cast(*array, arrow::uint64()));
    array = std::move(cast);
  }
  return std::static_pointer_cast<arrow::UInt64Array>(array);
}

// Binary and string arrays as views (what TakeOptions::binary_views asks for).
arrow::Result<std::shared_ptr<arrow::Array>> AsGathered(std::shared_ptr<arrow::Array> a,
                                                        bool binary_views) {
  if (!binary_views) return a;
  auto type = GatheredType(a->type(), true);
  if (type->Equals(*a->type())) return a;
  return arrow::compute::Cast(*a, type);
}

// POSTs `body` (JSON) to the `query/` route under `table_path`; the answer as one table.
// `what` names the table in messages. `said_asked`, if given, is set to whether the
// answer said kTakeOrderHeader: asked.
arrow::Result<std::shared_ptr<arrow::Table>> Query(
    const HttpClient& client, const std::string& table_path, HeaderList headers,
    std::function<arrow::Result<HeaderList>()> header_source, std::string body,
    std::string_view what, bool* said_asked = nullptr) {
  HttpRequest request;
  request.path = table_path + "query/";
  request.body = std::move(body);
  request.content_type = "application/json";
  request.headers = std::move(headers);
  request.header_source = std::move(header_source);
  ARROW_ASSIGN_OR_RAISE(HttpResponse response, client.Send(std::move(request)));
  if (said_asked != nullptr)
    *said_asked = response.header(kTakeOrderHeader) == kTakeOrderAsked;
  return ReadQueryAnswer(std::move(response.body), response.header("content-type"), what);
}

// An IPC file is its magic, the IPC stream of its batches, then a footer (with the schema
// and where the batches are) and its length and the magic again. The answer of a query
// is read from that stream, as a stream reader would, with the schema of the answer
// before it when its message has the same bytes (a take's answers all have the same
// schema): what a 256-row take's answer costs to read went from ~4.2 to ~1.2 µs (with
// hot caches), for the footer's and the schema's parses.
//
// nullptr (nothing read) for a file it does not read this way (no magic, a dictionary
// in the schema, another byte order, a message other than record batches in the
// stream) or one its footer does not frame: the file reader reads those, and says what
// is wrong. The footer itself is not read: a file whose stream is whole is read whatever
// its footer holds (the batches are validated in full either way).
// How an answer is read: its buffers point into it, unless one is not aligned for its
// type (an odd metadata length or buffer offset puts them anywhere), which is then
// copied: the client reads the values typed (the take's key column, and its caller).
arrow::ipc::IpcReadOptions AnswerReadOptions() {
  auto options = arrow::ipc::IpcReadOptions::Defaults();
  options.ensure_alignment = arrow::ipc::Alignment::kDataTypeSpecificAlignment;
  return options;
}

arrow::Result<std::shared_ptr<arrow::Table>> ReadFileStream(
    const std::shared_ptr<arrow::Buffer>& file) {
  constexpr std::string_view kMagic("ARROW1\0\0", 8);
  constexpr int64_t kTrailer = 4 + 6;  // the footer's length, then the magic unpadded
  const std::string_view bytes(reinterpret_cast<const char*>(file->data()),
                               static_cast<size_t>(file->size()));
  if (bytes.size() < kMagic.size() + kTrailer || bytes.substr(0, 8) != kMagic ||
      bytes.substr(bytes.size() - 6) != kMagic.substr(0, 6)) {
    return nullptr;
  }
  int32_t footer_bytes;
  std::memcpy(&footer_bytes, bytes.data() + bytes.size() - kTrailer, 4);
  const int64_t stream_end = file->size() - kTrailer - footer_bytes;
  if (footer_bytes < 0 || stream_end < 8) return nullptr;

  arrow::io::BufferReader input(arrow::SliceBuffer(file, 8, stream_end - 8));
  std::unique_ptr<arrow::ipc::MessageReader> messages =
      arrow::ipc::MessageReader::Open(&input);
  ARROW_ASSIGN_OR_RAISE(std::unique_ptr<arrow::ipc::Message> message,
                        messages->ReadNextMessage());
  if (message == nullptr || message->type() != arrow::ipc::MessageType::SCHEMA) {
    return nullptr;
  }
  // One schema per thread, compared by its message's bytes. Dictionaries, and byte
  // orders other than this machine's (the record batch reader below does not swap), are
  // the file reader's.
  struct SchemaCache {
    std::string metadata;
    std::shared_ptr<arrow::Schema> schema;
    bool readable = false;
  };
  thread_local SchemaCache cache;
  const std::string_view metadata(
      reinterpret_cast<const char*>(message->metadata()->data()),
      static_cast<size_t>(message->metadata()->size()));
  arrow::ipc::DictionaryMemo memo;
  if (cache.schema == nullptr || metadata != cache.metadata) {
    ARROW_ASSIGN_OR_RAISE(auto schema, arrow::ipc::ReadSchema(*message, &memo));
    cache.metadata.assign(metadata);
    cache.readable =
        schema->is_native_endian() &&
        std::none_of(schema->fields().begin(), schema->fields().end(),
                     [](const auto& f) { return HasDictionary(*f->type()); });
    cache.schema = std::move(schema);
  }
  if (!cache.readable) return nullptr;
  std::shared_ptr<arrow::Schema> schema = cache.schema;
  arrow::RecordBatchVector batches;
  const arrow::ipc::IpcReadOptions options = AnswerReadOptions();
  while (true) {
    ARROW_ASSIGN_OR_RAISE(message, messages->ReadNextMessage());
    if (message == nullptr) break;  // its end-of-stream marker, or the footer's start
    if (message->type() != arrow::ipc::MessageType::RECORD_BATCH) return nullptr;
    ARROW_ASSIGN_OR_RAISE(auto batch,
                          arrow::ipc::ReadRecordBatch(*message, schema, &memo, options));
    batches.push_back(std::move(batch));
  }
  return arrow::Table::FromRecordBatches(std::move(schema), std::move(batches));
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::Table>> ReadQueryAnswer(
    std::string body, const std::optional<std::string>& content_type,
    std::string_view what) {
  // The answer's arrays point into the body, which the buffer owns: no copy.
  auto buffer = arrow::Buffer::FromString(std::move(body));
  auto input = std::make_shared<arrow::io::BufferReader>(buffer);
  auto context = [&](const arrow::Status& status) {
    return arrow::Status::Invalid("The server's answer to a query of ", what,
                                  " is not valid Arrow IPC: ", status.message());
  };
  arrow::Result<std::shared_ptr<arrow::Table>> table;
  if (content_type && content_type->rfind(kArrowStream, 0) == 0) {
    auto reader = arrow::ipc::RecordBatchStreamReader::Open(input, AnswerReadOptions());
    if (!reader.ok()) return context(reader.status());
    table = (*reader)->ToTable();
  } else if (table = ReadFileStream(buffer); table.ok() && *table != nullptr) {
    // read from the file's stream
  } else {
    auto reader = arrow::ipc::RecordBatchFileReader::Open(input, AnswerReadOptions());
    if (!reader.ok()) return context(reader.status());
    table = (*reader)->ToTable();
  }
  if (!table.ok()) return context(table.status());
  // The bytes are the server's: offsets and lengths are checked before anything reads
  // the arrays (for fixed-width columns, buffer sizes only).
  if (auto valid = (*table)->ValidateFull(); !valid.ok()) return context(valid);
  return *table;
}

KeyRanks RankKeys(std::span<const uint64_t> keys) {
  KeyRanks ranks;
  ranks.rank.resize(keys.size());
  if (std::adjacent_find(keys.begin(), keys.end(), std::greater_equal<uint64_t>()) ==
      keys.end()) {
    ranks.unique.assign(keys.begin(), keys.end());
    std::iota(ranks.rank.begin(), ranks.rank.end(), int64_t{0});
    return ranks;
  }
  std::vector<std::pair<uint64_t, int64_t>> order(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) order[i] = {keys[i], static_cast<int64_t>(i)};
  std::sort(order.begin(), order.end());
  ranks.unique.reserve(keys.size());
  for (const auto& [key, position] : order) {
    if (ranks.unique.empty() || ranks.unique.back() != key) ranks.unique.push_back(key);
    ranks.rank[position] = static_cast<int64_t>(ranks.unique.size()) - 1;
  }
  return ranks;
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> OrderTakeAnswer(
    std::shared_ptr<arrow::Table> table, std::span<const uint64_t> keys,
    const KeyRanks& ranks, bool by_row_id, std::string_view what) {
  const char* key_column = by_row_id ? kRowIdColumn : kRowOffsetColumn;
  const std::vector<uint64_t>& unique = ranks.unique;
  if (keys.empty()) {
    ARROW_ASSIGN_OR_RAISE(table, table->Slice(0, 0)->CombineChunks());
    return table->CombineChunksToBatch();
  }
  ARROW_ASSIGN_OR_RAISE(auto rows, table->CombineChunksToBatch());

  // Where each asked-for key is in the answer: the answer's row of each distinct key.
  std::vector<int64_t> row_of_unique(unique.size(), -1);
  auto missing = [&](size_t i) {
    return arrow::Status::IndexError(by_row_id ? "Row id " : "Offset ", keys[i],
                                     " at position ", i, " is not a row of ", what);
  };
  if (rows->GetColumnByName(key_column) != nullptr) {
    ARROW_ASSIGN_OR_RAISE(auto answer_keys, KeyColumn(*rows, key_column));
    const int64_t n = answer_keys->length();
    const uint64_t* answered = answer_keys->raw_values();
    if (n == static_cast<int64_t>(unique.size()) && answer_keys->null_count() == 0 &&
        std::equal(unique.begin(), unique.end(), answered)) {
      std::iota(row_of_unique.begin(), row_of_unique.end(), int64_t{0});  // as asked
    } else {
      // Any order, any repeats: both sides ascending, then one merge.
      std::vector<std::pair<uint64_t, int64_t>> found;
      found.reserve(n);
      for (int64_t i = 0; i < n; ++i) {
        if (answer_keys->IsValid(i)) found.emplace_back(answered[i], i);
      }
      std::sort(found.begin(), found.end());
      size_t f = 0;
      for (size_t u = 0; u < unique.size(); ++u) {
        while (f < found.size() && found[f].first < unique[u]) ++f;
        if (f < found.size() && found[f].first == unique[u])
          row_of_unique[u] = found[f].second;
      }
    }
  } else if (by_row_id) {
    return arrow::Status::Invalid("The server's answer to a take from ", what,
                                  " has no column '", key_column, "'");
  } else {
    if (rows->num_rows() != static_cast<int64_t>(unique.size())) {
      return arrow::Status::Invalid("The server answered ", rows->num_rows(),
                                    " rows for a take of ", unique.size(),
                                    " distinct offsets of ", what);
    }
    std::iota(row_of_unique.begin(), row_of_unique.end(), int64_t{0});
  }
  std::vector<int64_t> indices(keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    indices[i] = row_of_unique[ranks.rank[i]];
    if (indices[i] < 0) return missing(i);
  }
  bool identity = indices.size() == static_cast<size_t>(rows->num_rows());
  for (size_t i = 0; identity && i < indices.size(); ++i) {
    identity = indices[i] == static_cast<int64_t>(i);
  }
  if (identity) return rows;
  std::vector<ChunkRow> refs(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) refs[i] = ChunkRow{0, indices[i]};
  arrow::ArrayVector columns;
  columns.reserve(rows->num_columns());
  for (const auto& column : rows->columns()) {
    ARROW_ASSIGN_OR_RAISE(auto gathered, GatherRows({column}, refs, /*pool=*/nullptr));
    columns.push_back(std::move(gathered));
  }
  return arrow::RecordBatch::Make(rows->schema(), static_cast<int64_t>(keys.size()),
                                  std::move(columns));
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> AnswerAsAsked(
    const std::shared_ptr<arrow::Table>& answer, std::span<const uint64_t> keys,
    bool by_row_id, std::string_view what) {
  const char* key_column = by_row_id ? kRowIdColumn : kRowOffsetColumn;
  ARROW_ASSIGN_OR_RAISE(auto rows, answer->CombineChunksToBatch());
  if (rows->GetColumnByName(key_column) == nullptr) {
    if (by_row_id) {
      return arrow::Status::Invalid("The server's answer to a take from ", what,
                                    " has no column '", key_column, "'");
    }
    if (rows->num_rows() != static_cast<int64_t>(keys.size())) {
      return arrow::Status::Invalid("The server answered ", rows->num_rows(),
                                    " rows for a take of ", keys.size(), " offsets of ",
                                    what);
    }
    return rows;
  }
  ARROW_ASSIGN_OR_RAISE(auto answer_keys, KeyColumn(*rows, key_column));
  if (answer_keys->length() == static_cast<int64_t>(keys.size()) &&
      answer_keys->null_count() == 0 &&
      std::equal(keys.begin(), keys.end(), answer_keys->raw_values())) {
    return rows;
  }
  return nullptr;
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeRemoteRows(
    const HttpClient& client, const RemoteTake& take, std::span<const uint64_t> keys) {
  if (take.max_keys_per_request < 1) {
    return arrow::Status::Invalid("max_keys_per_request must be at least 1, got ",
                                  take.max_keys_per_request);
  }
  const char* key_column = take.by_row_id ? kRowIdColumn : kRowOffsetColumn;
  const std::string what =
      take.description.empty() ? "table '" + take.name + "'" : take.description;
  if (!take.by_row_id) {
    // Offsets are int64 values (as unsigned here): a negative one is past INT64_MAX.
    const auto negative = std::find_if(keys.begin(), keys.end(), [](uint64_t key) {
      return key > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    });
    if (negative != keys.end()) {
      return arrow::Status::IndexError("Offset ", static_cast<int64_t>(*negative),
                                       " at position ", negative - keys.begin(),
                                       " is out of range for ", what);
    }
  }
  // The body of a query, as LanceDB's client writes it; no filter: one row (an empty
  // take asks for the answer's schema).
  std::string version = take.version ? std::to_string(*take.version) : "null";
  if (!take.table_id.empty()) {
    version += ",\"table_id\":" + nlohmann::json(take.table_id).dump();
  }
  std::string names;
  if (!take.columns.empty()) names = nlohmann::json(take.columns).dump();
  auto body = [&](std::span<const uint64_t> chunk) {
    std::string out = "{\"version\":" + version + ",\"prefilter\":true,\"k\":";
    out += chunk.empty() ? "1" : std::to_string(kNoLimit);
    out += ",\"vector\":[]";
    if (!names.empty()) out += ",\"columns\":" + names;
    if (take.with_row_id || take.by_row_id) out += ",\"with_row_id\":true";
    if (!chunk.empty()) {
      out += ",\"filter\":\"";
      AppendInList(key_column, chunk, &out);
      out += '"';
    }
    out += "}";
    return out;
  };
  // The answers to the queries of `list`, max_keys_per_request keys each, as one table;
  // `said_asked` (if given): whether every answer said kTakeOrderHeader: asked.
  auto ask = [&](std::span<const uint64_t> list,
                 bool* said_asked) -> arrow::Result<std::shared_ptr<arrow::Table>> {
    std::vector<std::shared_ptr<arrow::Table>> answers;
    const size_t step = static_cast<size_t>(take.max_keys_per_request);
    size_t begin = 0;
    do {
      const auto chunk = list.subspan(begin, std::min(step, list.size() - begin));
      bool said = false;
      ARROW_ASSIGN_OR_RAISE(
          auto answer, Query(client, take.table_path, take.headers, take.header_source,
                             body(chunk), what, &said));
      if (said_asked != nullptr) *said_asked = *said_asked && said;
      answers.push_back(std::move(answer));
      begin += chunk.size();
    } while (begin < list.size());
    if (answers.size() == 1) return answers[0];
    return arrow::ConcatenateTables(answers);
  };

  // A riffledb server (HttpClient::TakesInAskedOrder) is asked for the keys as they are,
  // and answers them in that order, as its every answer says. If one of the answers does
  // not say so (the address now reaches another server), the take is asked again as of
  // any server: each key once, ascending (a server may deduplicate and reorder:
  // LanceDB's does), the answer put in order here.
  if (client.TakesInAskedOrder() && !keys.empty()) {
    bool said_asked = true;
    ARROW_ASSIGN_OR_RAISE(auto table, ask(keys, &said_asked));
    if (said_asked) {
      ARROW_ASSIGN_OR_RAISE(auto rows, AnswerAsAsked(table, keys, take.by_row_id, what));
      if (rows != nullptr) return rows;
      // Not in the order asked for after all: matched by its key column here.
      return OrderTakeAnswer(std::move(table), keys, RankKeys(keys), take.by_row_id,
                             what);
    }
  }
  const KeyRanks ranks = RankKeys(keys);
  ARROW_ASSIGN_OR_RAISE(auto table, ask(ranks.unique, nullptr));
  return OrderTakeAnswer(std::move(table), keys, ranks, take.by_row_id, what);
}

arrow::Result<std::shared_ptr<const RemoteTakeSource>> RemoteTakeSource::Open(
    std::shared_ptr<const HttpClient> client, RemoteTableOptions options) {
  if (client == nullptr) return arrow::Status::Invalid("client is required");
  if (options.max_keys_per_request < 1) {
    return arrow::Status::Invalid("max_keys_per_request must be at least 1, got ",
                                  options.max_keys_per_request);
  }
  std::shared_ptr<RemoteTakeSource> source(new RemoteTakeSource());
  source->client_ = std::move(client);
  source->options_ = std::move(options);
  // The schema: a one-row query (spec §2.9 step 2), whose answer carries it.
  nlohmann::json probe = BaseBody(source->options_.version, source->options_.table_id);
  probe["k"] = 1;
  ARROW_ASSIGN_OR_RAISE(
      auto answer,
      Query(*source->client_, source->options_.table_path, source->options_.headers,
            source->options_.header_source, probe.dump(), source->ToString()));
  source->schema_ = answer->schema();
  ARROW_ASSIGN_OR_RAISE(source->all_columns_, Projection::All(source->schema_));

  nlohmann::json count;
  count["version"] = source->options_.version ? nlohmann::json(*source->options_.version)
                                              : nlohmann::json(nullptr);
  if (!source->options_.table_id.empty()) count["table_id"] = source->options_.table_id;
  HttpRequest request;
  request.path = source->options_.table_path + "count_rows/";
  request.body = count.dump();
  request.content_type = "application/json";
  request.headers = source->options_.headers;
  request.header_source = source->options_.header_source;
  ARROW_ASSIGN_OR_RAISE(HttpResponse response, source->client_->Send(std::move(request)));
  const std::string& text = response.body;
  size_t begin = text.find_first_not_of(" \t\r\n");
  size_t end = text.find_last_not_of(" \t\r\n");
  int64_t rows = -1;
  if (begin != std::string::npos) {
    auto [ptr, ec] = std::from_chars(text.data() + begin, text.data() + end + 1, rows);
    if (ec != std::errc() || ptr != text.data() + end + 1) rows = -1;
  }
  if (rows < 0) {
    return arrow::Status::Invalid("The server's count_rows answer for table '",
                                  source->options_.name,
                                  "' is not a row count: ", text.substr(0, 100));
  }
  source->num_rows_ = rows;
  return source;
}

std::string RemoteTakeSource::ToString() const {
  std::string out = "remote table '" + options_.name + "'";
  if (options_.version) out += " version " + std::to_string(*options_.version);
  return out;
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> RemoteTakeSource::Take(
    std::span<const uint64_t> keys, bool by_row_id, const TakeOptions& options) const {
  const Projection* projection = all_columns_.get();
  if (options.projection != nullptr) {
    if (!SameSchema(options.projection->schema(), schema_)) {
      return arrow::Status::Invalid("The projection of a take from ", ToString(),
                                    " was bound to another schema");
    }
    projection = options.projection.get();
  }
  const NeededColumns& needed = projection->needed();
  RemoteTake take;
  take.name = options_.name;
  take.table_path = options_.table_path;
  take.version = options_.version;
  take.table_id = options_.table_id;
  take.by_row_id = by_row_id;
  for (int c : needed.columns) take.columns.push_back(schema_->field(c)->name());
  if (needed.row_id && !by_row_id) take.columns.push_back(kRowIdColumn);
  if (needed.row_offset || !by_row_id) take.columns.push_back(kRowOffsetColumn);
  if (take.columns.empty()) take.columns.push_back(kRowIdColumn);  // else: every column
  take.headers = options_.headers;
  take.header_source = options_.header_source;
  take.max_keys_per_request = options_.max_keys_per_request;
  take.description = ToString();             // with its version
  std::shared_ptr<arrow::RecordBatch> rows;  // null: nothing asked for, nothing sent
  if (!keys.empty()) {
    ARROW_ASSIGN_OR_RAISE(rows, TakeRemoteRows(*client_, take, keys));
  }

  // The projection's input: its needed columns, in NeededColumns order.
  const auto& input_schema = projection->input_schema();
  arrow::ArrayVector inputs;
  inputs.reserve(input_schema->num_fields());
  for (const auto& field : input_schema->fields()) {
    std::shared_ptr<arrow::Array> input;
    if (rows == nullptr) {
      ARROW_ASSIGN_OR_RAISE(input, arrow::MakeEmptyArray(field->type()));
    } else {
      auto column = rows->GetColumnByName(field->name());
      if (column == nullptr) {
        return arrow::Status::Invalid("The server's answer to a take from ", ToString(),
                                      " has no column '", field->name(), "'");
      }
      input = std::move(column);
      if (!input->type()->Equals(*field->type())) {
        ARROW_ASSIGN_OR_RAISE(input, arrow::compute::Cast(*input, field->type()));
      }
    }
    ARROW_ASSIGN_OR_RAISE(input, AsGathered(std::move(input), options.binary_views));
    inputs.push_back(std::move(input));
  }
  return projection->Project(std::move(inputs), static_cast<int64_t>(keys.size()));
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> RemoteTakeSource::TakeOffsets(
    std::span<const int64_t> offsets, const TakeOptions& options) const {
  std::vector<uint64_t> keys(offsets.size());
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (offsets[i] < 0 || offsets[i] >= num_rows_) {
      return arrow::Status::IndexError("Offset ", offsets[i], " at position ", i,
                                       " is out of range for ", ToString(), " of ",
                                       num_rows_, " rows");
    }
    keys[i] = static_cast<uint64_t>(offsets[i]);
  }
  return Take(keys, /*by_row_id=*/false, options);
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> RemoteTakeSource::TakeRowIds(
    std::span<const uint64_t> row_ids, const TakeOptions& options) const {
  return Take(row_ids, /*by_row_id=*/true, options);
}

arrow::Result<std::vector<uint64_t>> RemoteTakeSource::RowIdsOfOffsets(
    std::span<const int64_t> offsets) const {
  const std::string names[] = {kRowIdColumn};
  TakeOptions options;
  ARROW_ASSIGN_OR_RAISE(options.projection, Projection::Columns(schema_, names));
  ARROW_ASSIGN_OR_RAISE(auto batch, TakeOffsets(offsets, options));
  const auto& ids = static_cast<const arrow::UInt64Array&>(*batch->column(0));
  return std::vector<uint64_t>(ids.raw_values(), ids.raw_values() + ids.length());
}

}  // namespace riffledb::remote
