#include "riffledb/remote/service.h"

#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/memory_pool.h>
#include <arrow/record_batch.h>
#include <arrow/util/base64.h>
#include <arrow/util/logging.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "riffledb/expr/projection.h"
#include "riffledb/table/gather.h"
#include "riffledb/util/status.h"

namespace riffledb::remote {

namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

using Json = nlohmann::json;

std::shared_ptr<arrow::Buffer> TextBuffer(std::string text) {
  return arrow::Buffer::FromString(std::move(text));
}

Reply JsonReply(const Json& json) {
  Reply reply;
  reply.body = {TextBuffer(json.dump(-1, ' ', false, Json::error_handler_t::replace))};
  return reply;
}

// The memory an IPC body is decoded into (decompressed buffers): a budget of
// `limit` bytes in total, after which allocations fail, so that a small LZ4 body
// declaring huge buffers (a decompression bomb) is refused before it is expanded.
// Arrow's reader allocates each decompressed buffer at the size the body declares,
// then checks that the data fills it exactly: the allocation is where to stop.
//
// Buffers remember their pool by raw pointer and may outlive the request (a memory
// database keeps the batches), so the pool counts its owners: the reader that holds it
// and every live allocation. The last to go deletes it.
class DecodeBudgetPool final : public arrow::MemoryPool {
 public:
  static DecodeBudgetPool* Make(int64_t limit) { return new DecodeBudgetPool(limit); }

  /// The owner is done with it (its allocations may live on).
  void Release() { Unref(); }
  bool exceeded() const { return exceeded_.load(std::memory_order_acquire); }
  int64_t limit() const { return limit_; }

  arrow::Status Allocate(int64_t size, int64_t alignment, uint8_t** out) override {
    ARROW_RETURN_NOT_OK(Charge(size));
    ARROW_RETURN_NOT_OK(base_->Allocate(size, alignment, out));
    refs_.fetch_add(1, std::memory_order_relaxed);
    return arrow::Status::OK();
  }

  arrow::Status Reallocate(int64_t old_size, int64_t new_size, int64_t alignment,
                           uint8_t** ptr) override {
    if (new_size > old_size) ARROW_RETURN_NOT_OK(Charge(new_size - old_size));
    return base_->Reallocate(old_size, new_size, alignment, ptr);
  }

  void Free(uint8_t* buffer, int64_t size, int64_t alignment) override {
    base_->Free(buffer, size, alignment);
    Unref();
  }

  int64_t bytes_allocated() const override { return base_->bytes_allocated(); }
  int64_t total_bytes_allocated() const override {
    return charged_.load(std::memory_order_relaxed);
  }
  int64_t num_allocations() const override {
    return refs_.load(std::memory_order_relaxed) - 1;
  }
  std::string backend_name() const override { return base_->backend_name(); }

 private:
  explicit DecodeBudgetPool(int64_t limit) : limit_(limit) {}

  // Adds `size` to what was charged, unless that would pass the limit. Only charges that
  // fit are added, so the sum stays within [0, limit_] and cannot overflow, whatever
  // sizes a hostile body claims (the request fuzzer found two of ~8e18 bytes).
  arrow::Status Charge(int64_t size) {
    int64_t charged = charged_.load(std::memory_order_relaxed);
    do {
      if (size < 0 || size > limit_ - charged) {
        exceeded_.store(true, std::memory_order_release);
        return arrow::Status::CapacityError("decode budget exceeded");
      }
    } while (!charged_.compare_exchange_weak(charged, charged + size,
                                             std::memory_order_relaxed));
    return arrow::Status::OK();
  }

  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  arrow::MemoryPool* const base_ = arrow::default_memory_pool();
  const int64_t limit_;
  std::atomic<int64_t> charged_{0};
  std::atomic<int64_t> refs_{1};  // the owner's, plus one per live allocation
  std::atomic<bool> exceeded_{false};
};

// Wraps IPC decoding: every batch is fully validated before anyone reads it (the body is
// untrusted), and decoding errors become Invalid naming the body, answered 400; a body
// that decompresses to more than its budget is CapacityError, answered 413.
class ValidatingReader : public arrow::RecordBatchReader {
 public:
  ValidatingReader(std::shared_ptr<arrow::RecordBatchReader> inner,
                   DecodeBudgetPool* pool)
      : inner_(std::move(inner)), pool_(pool) {}
  ~ValidatingReader() override {
    inner_.reset();  // it may hold buffers of the pool
    pool_->Release();
  }

  std::shared_ptr<arrow::Schema> schema() const override { return inner_->schema(); }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* batch) override {
    arrow::Status st = inner_->ReadNext(batch);
    if (st.ok() && *batch != nullptr) st = (*batch)->ValidateFull();
    if (!st.ok()) {
      *batch = nullptr;
      if (pool_->exceeded()) return TooLarge(pool_->limit());
      return arrow::Status::Invalid("Invalid Arrow IPC stream body (record batch ",
                                    batches_, "): ", st.message());
    }
    if (*batch != nullptr) ++batches_;
    return arrow::Status::OK();
  }

  static arrow::Status TooLarge(int64_t limit) {
    return arrow::Status::CapacityError("Request body decompresses to more than ", limit,
                                        " bytes (the server's --max-decoded-bytes)");
  }

 private:
  std::shared_ptr<arrow::RecordBatchReader> inner_;
  DecodeBudgetPool* const pool_;
  int64_t batches_ = 0;
};

// A reader of the IPC stream in `body`, which it keeps alive (tables in memory keep the
// batches, which may point into it); its buffers decompress to at most `max_decoded`
// bytes in total.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> OpenIpcStream(
    std::string body, const char* what, int64_t max_decoded) {
  if (body.empty()) {
    return arrow::Status::Invalid(what, " needs a body: an Arrow IPC stream (",
                                  kArrowStreamType, ")");
  }
  auto buffer = arrow::Buffer::FromString(std::move(body));
  auto input = std::make_shared<arrow::io::BufferReader>(buffer);
  DecodeBudgetPool* pool = DecodeBudgetPool::Make(max_decoded);
  auto options = arrow::ipc::IpcReadOptions::Defaults();
  options.memory_pool = pool;
  // A client decides where the buffers start: one not aligned for its type is copied
  // (into the budget), never read in place.
  options.ensure_alignment = arrow::ipc::Alignment::kDataTypeSpecificAlignment;
  auto reader = arrow::ipc::RecordBatchStreamReader::Open(input, options);
  if (!reader.ok()) {
    const bool exceeded = pool->exceeded();
    pool->Release();
    if (exceeded) return ValidatingReader::TooLarge(max_decoded);
    return arrow::Status::Invalid("Invalid Arrow IPC stream body: ",
                                  reader.status().message());
  }
  return std::make_shared<ValidatingReader>(std::move(*reader), pool);
}

// The bytes an IPC writer writes, kept until taken.
class PieceSink final : public arrow::io::OutputStream {
 public:
  // Smaller buffers are copied with the metadata around them.
  static constexpr int64_t kReferencedBytes = 8192;

  arrow::Status Write(const void* data, int64_t nbytes) override {
    pending_.append(static_cast<const char*>(data), static_cast<size_t>(nbytes));
    position_ += nbytes;
    return arrow::Status::OK();
  }
  // The IPC writer hands over each body buffer whole: a large one is kept as it is, a
  // piece of its own, so that a take's gathered columns are sent from where the take
  // put them (a 256-row take of 520-byte rows: 133 kB not copied). Not a slice of a
  // larger buffer (a scan's batch of a fragment's pages): that would be held whole
  // while counted as the slice (held()), so it is copied.
  arrow::Status Write(const std::shared_ptr<arrow::Buffer>& data) override {
    if (data->size() < kReferencedBytes || !data->is_cpu() || data->parent() != nullptr) {
      return Write(data->data(), data->size());
    }
    EndPending();
    pieces_.push_back(data);
    held_ += data->size();
    position_ += data->size();
    return arrow::Status::OK();
  }
  arrow::Status Close() override {
    closed_ = true;
    return arrow::Status::OK();
  }
  bool closed() const override { return closed_; }
  arrow::Result<int64_t> Tell() const override { return position_; }

  /// The bytes written and not taken yet.
  int64_t held() const { return held_ + static_cast<int64_t>(pending_.size()); }
  /// What was written and not taken yet, in order; then nothing is held.
  arrow::BufferVector Take() {
    EndPending();
    held_ = 0;
    return std::exchange(pieces_, {});
  }
  /// Room for `bytes` more of small writes.
  void Reserve(size_t bytes) { pending_.reserve(pending_.size() + bytes); }

 private:
  void EndPending() {
    if (pending_.empty()) return;
    held_ += static_cast<int64_t>(pending_.size());
    pieces_.push_back(arrow::Buffer::FromString(std::exchange(pending_, std::string())));
  }

  std::string pending_;  // small writes since the last piece
  arrow::BufferVector pieces_;
  int64_t held_ = 0;  // bytes in pieces_
  int64_t position_ = 0;
  bool closed_ = false;
};

// The rows of each batch of a scan of `_rowid` alone: LanceDB's Permutation's default
// batch size (QueryOnce).
constexpr int64_t kRowIdScanBatchRows = 100;

// The batches of an answer, then null.
using BatchSource = std::function<arrow::Result<std::shared_ptr<arrow::RecordBatch>>()>;

// A query answer: an IPC file of the source's batches, each split to at most `max_rows`
// rows, written a batch at a time. Query() writes it up to the buffered-answer bound;
// what remains is written while it is sent, so at most about one batch is held at once.
//
// With `stream`, an IPC stream instead: for an answer with a dictionary column whose
// batches may each have a dictionary of their own (two fragments', two takes'), which a
// file cannot hold (one dictionary per field) and a stream can (a replacement). LanceDB's
// clients read a stream labelled as one since 0.37.1 (spec §2.6), older ones files only,
// so a file whenever it can hold the answer; riffledb's read both.
class IpcFileAnswer final : public BodyStream {
 public:
  static arrow::Result<std::shared_ptr<IpcFileAnswer>> Make(
      const std::shared_ptr<arrow::Schema>& schema, BatchSource source, int64_t max_rows,
      bool stream) {
    std::shared_ptr<IpcFileAnswer> answer(new IpcFileAnswer(std::move(source), max_rows));
    answer->stream_ = stream;
    if (stream) {
      ARROW_ASSIGN_OR_RAISE(answer->writer_,
                            arrow::ipc::MakeStreamWriter(answer->sink_, schema));
    } else {
      ARROW_ASSIGN_OR_RAISE(answer->writer_,
                            arrow::ipc::MakeFileWriter(answer->sink_, schema));
    }
    return answer;
  }

  /// kArrowStreamType or kArrowFileType.
  const char* content_type() const { return stream_ ? kArrowStreamType : kArrowFileType; }

  bool done() const { return done_; }

  /// Writes batches until more than `bytes` are held or the file is complete.
  arrow::Status Fill(int64_t bytes) {
    while (!done_ && sink_->held() <= bytes) ARROW_RETURN_NOT_OK(WriteNext());
    return arrow::Status::OK();
  }

  /// The bytes held, in pieces (all of the file once done()).
  arrow::BufferVector TakePending() { return sink_->Take(); }

  arrow::Status WriteTo(const Writer& write) override {
    ARROW_RETURN_NOT_OK(Send(write));
    while (!done_) {
      ARROW_RETURN_NOT_OK(WriteNext());
      ARROW_RETURN_NOT_OK(Send(write));
    }
    return arrow::Status::OK();
  }

 private:
  IpcFileAnswer(BatchSource source, int64_t max_rows)
      : source_(std::move(source)), max_rows_(max_rows) {}

  // The next batch of the source, or the footer after the last.
  arrow::Status WriteNext() {
    ARROW_ASSIGN_OR_RAISE(auto batch, source_());
    if (batch == nullptr) {
      ARROW_RETURN_NOT_OK(writer_->Close());
      source_ = nullptr;  // lets go of the reader, and the snapshot it holds
      done_ = true;
      return arrow::Status::OK();
    }
    for (int64_t start = 0; start < batch->num_rows(); start += max_rows_) {
      auto slice = batch->Slice(start, std::min(max_rows_, batch->num_rows() - start));
      // Room for the slice's metadata and the footer after it (large buffers are kept
      // by reference, small ones grow the copied bytes as they come: PieceSink).
      sink_->Reserve(kMessageRoom + 64 * static_cast<size_t>(slice->num_columns()));
      ARROW_RETURN_NOT_OK(writer_->WriteRecordBatch(*slice));
    }
    return arrow::Status::OK();
  }

  arrow::Status Send(const Writer& write) {
    for (const auto& piece : sink_->Take()) {
      if (!write(std::string_view(reinterpret_cast<const char*>(piece->data()),
                                  static_cast<size_t>(piece->size())))) {
        return arrow::Status::IOError("The client stopped reading");
      }
    }
    return arrow::Status::OK();
  }

  // Metadata, padding and footer beyond the buffers, generously.
  static constexpr size_t kMessageRoom = 4096;

  BatchSource source_;
  const int64_t max_rows_;
  const std::shared_ptr<PieceSink> sink_ = std::make_shared<PieceSink>();
  std::shared_ptr<arrow::ipc::RecordBatchWriter> writer_;
  bool stream_ = false;
  bool done_ = false;
};

std::string Rfc3339(int64_t ms) {
  std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[64];
  std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                tm.tm_sec, static_cast<int>(ms % 1000));
  return text;
}

void ReplaceAll(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  for (size_t at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
}

}  // namespace

int64_t BodySize(const Reply& reply) {
  int64_t size = 0;
  for (const auto& piece : reply.body) size += piece->size();
  return size;
}

std::string BodyText(const Reply& reply) {
  std::string text;
  text.reserve(static_cast<size_t>(BodySize(reply)));
  for (const auto& piece : reply.body) text.append(piece->ToString());
  return text;
}

Reply ErrorReply(int status, std::string_view message) {
  Reply reply;
  reply.status = status;
  reply.body = {TextBuffer(ErrorJson(message))};
  return reply;
}

int HttpStatusOf(const arrow::Status& status) {
  if (auto kind = GetErrorKind(status)) {
    switch (*kind) {
      case ErrorKind::kTableNotFound:
        return 404;
      case ErrorKind::kTableExists:
        return 400;  // LanceDB's client: 400 saying "already exists" (spec §2.2)
      case ErrorKind::kCorruption:
      case ErrorKind::kCommitOutcomeUnknown:
        return 500;
    }
  }
  if (status.IsKeyError()) return 404;
  if (status.IsInvalid() || status.IsIndexError() || status.IsTypeError()) return 400;
  if (status.IsNotImplemented()) return 501;
  if (status.IsCapacityError()) return 413;
  return 500;
}

namespace {

int64_t ResolveVersionCheck(const Database& db, int64_t interval_ms) {
  if (interval_ms != ServiceOptions::kAutoVersionCheck) return interval_ms;
  // A directory's uri is its path; object storage's has a scheme (s3://).
  const bool object_store = !db.in_memory() && db.uri().find("://") != std::string::npos;
  return object_store ? ServiceOptions::kObjectStoreVersionCheckMs : 0;
}

}  // namespace

Service::Service(std::shared_ptr<Database> db, ServiceOptions options)
    : db_(std::move(db)),
      options_(options),
      version_check_interval_ms_(
          ResolveVersionCheck(*db_, options.version_check_interval_ms)) {
  ARROW_DCHECK_GT(options_.max_batch_rows, 0);
}

Reply Service::ToErrorReply(const arrow::Status& status) const {
  std::string message = status.message();
  // Clients need not know where the database lives on the server.
  if (!db_->in_memory()) ReplaceAll(message, db_->uri(), "<db>");
  return ErrorReply(HttpStatusOf(status), message);
}

Reply Service::Handle(std::string_view method, std::string_view target,
                      std::string body) const {
  arrow::Result<Reply> reply = [&]() -> arrow::Result<Reply> {
    ARROW_ASSIGN_OR_RAISE(auto route, ParseRoute(target));
    return Dispatch(method, route, std::move(body));
  }();
  if (!reply.ok()) return ToErrorReply(reply.status());
  return std::move(*reply);
}

arrow::Result<Reply> Service::Dispatch(std::string_view method, const Route& route,
                                       std::string body) const {
  if (route.kind == Route::Kind::kListTables) {
    if (method != "GET") return ErrorReply(405, "List tables with GET");
    return ListTables(route);
  }
  if (method != "POST") {
    return ErrorReply(405, "Table routes take POST, not " + std::string(method));
  }
  const std::string& action = route.action;
  if (action == "create") return CreateTable(route, std::move(body));
  if (action == "describe") return Describe(route, body);
  if (action == "count_rows") return CountRows(route, body);
  if (action == "insert") return Insert(route, std::move(body));
  if (action == "query") return Query(route, body);
  if (action == "drop") return DropTable(route);
  if (action == "version/list") return ListVersions(route);
  if (action == "get_lsm_write_spec") {
    // Asked by LanceDB's permutation builder (spec §2.9): riffledb has no LSM writes.
    ARROW_RETURN_NOT_OK(OpenAt(route.table, std::nullopt));
    return JsonReply(Json{{"lsm_write_spec", nullptr}});
  }
  return arrow::Status::NotImplemented("riffledb serve does not implement '",
                                       action.substr(0, 100), "' on tables");
}

arrow::Result<std::shared_ptr<Table>> Service::OpenLatest(const std::string& name) const {
  // Bounds the cache: a server of many tables reopens some of them.
  constexpr size_t kMaxCachedTables = 256;
  CachedTable cached;
  uint64_t generation;
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = tables_.find(name);
    if (it != tables_.end()) cached = it->second;
    generation = generation_;
  }
  if (cached.table != nullptr) {
    const std::shared_ptr<Table>& table = cached.table;
    if (version_check_interval_ms_ > 0 && !table->detached()) {
      // Asked the store lately: the version held is the newest as far as this interval
      // goes. One request asks; those arriving meanwhile use the handle.
      const int64_t now = SteadyMs();
      int64_t last = cached.version_checked_ms->load(std::memory_order_relaxed);
      if (now - last < version_check_interval_ms_ ||
          !cached.version_checked_ms->compare_exchange_strong(
              last, now, std::memory_order_relaxed)) {
        return table;
      }
    }
    // Two stats on a directory; an error (the table was dropped) reopens, which reports.
    auto latest = table->store()->LatestVersion();
    if (latest.ok() && *latest == table->version() && !table->detached()) {
      // Still the same table? Checked once in a while only: a manifest read.
      const int64_t now = SteadyMs();
      int64_t last = cached.checked_ms->load(std::memory_order_relaxed);
      // One request checks; those arriving meanwhile use the handle.
      if (now - last < options_.table_check_interval_ms ||
          !cached.checked_ms->compare_exchange_strong(last, now,
                                                      std::memory_order_relaxed)) {
        return table;
      }
      auto same = table->store()->SameTableAt(*latest);
      if (same.ok() && *same) return table;
      // Dropped and created again by another process: reopened below.
    }
    // Newer versions (appends, by this server or another writer): the cached handle moves
    // to the newest in place, keeping the fragments it opened, so that its writers stay
    // on it. One request of the table at a time: those arriving meanwhile find it moved.
    // Anything else (an older or damaged newest version: a drop and create elsewhere)
    // reopens.
    if (latest.ok() && *latest > table->version() && !table->detached()) {
      std::lock_guard<std::mutex> refresh(*cached.refresh);
      if (table->version() < *latest) (void)table->CheckoutLatest();
      if (table->version() >= *latest && !table->detached()) return table;
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto table, db_->OpenTable(name));
  table_opens_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (generation == generation_) {
    if (tables_.size() >= kMaxCachedTables && !tables_.contains(name)) tables_.clear();
    const int64_t now = SteadyMs();
    tables_[name] = {table, std::make_shared<std::mutex>(),
                     std::make_shared<std::atomic<int64_t>>(now),
                     std::make_shared<std::atomic<int64_t>>(now)};
  }
  return table;
}

void Service::Evict(const std::string& name) const {
  std::lock_guard<std::mutex> lock(cache_mu_);
  tables_.erase(name);
  ++generation_;
}

arrow::Result<std::shared_ptr<Table>> Service::OpenAt(
    const std::string& name, std::optional<uint64_t> version) const {
  ARROW_ASSIGN_OR_RAISE(auto table, OpenLatest(name));
  if (version && *version != table->version()) return OpenVersion(name, *version);
  return table;
}

arrow::Result<std::shared_ptr<Table>> Service::OpenVersion(const std::string& name,
                                                           uint64_t version) const {
  // A handle of its own (the cached one stays at the newest).
  ARROW_ASSIGN_OR_RAISE(auto table, db_->OpenTable(name));
  arrow::Status st = table->Checkout(version);
  if (st.IsInvalid() && !GetErrorKind(st)) {
    return WithErrorKind(st, ErrorKind::kTableNotFound);
  }
  ARROW_RETURN_NOT_OK(st);
  return table;
}

arrow::Result<std::shared_ptr<const Snapshot>> Service::SnapshotAt(
    const std::string& name, std::optional<uint64_t> version,
    const std::optional<std::string>& table_id) const {
  ARROW_ASSIGN_OR_RAISE(auto table, OpenAt(name, version));
  ARROW_ASSIGN_OR_RAISE(auto snapshot, table->snapshot());
  // The cached handle is shared: another request may have moved it to a newer version
  // between OpenAt's check and this read.
  if (version && snapshot->version() != *version) {
    ARROW_ASSIGN_OR_RAISE(table, OpenVersion(name, *version));
    ARROW_ASSIGN_OR_RAISE(snapshot, table->snapshot());
  }
  // A version of another table of this name (the one read was dropped and another one
  // created up to this version): not found, as a local handle of the dropped table.
  const std::string& id = snapshot->manifest().table_id;
  if (table_id && !id.empty() && *table_id != id) {
    return WithErrorKind(
        arrow::Status::Invalid("Table '", name, "' version ", snapshot->version(),
                               " is of another table than the one read before: it was "
                               "dropped and created again"),
        ErrorKind::kTableNotFound);
  }
  return snapshot;
}

arrow::Result<Reply> Service::ListTables(const Route& route) const {
  std::optional<int64_t> limit;
  if (auto text = FindParam(route.params, "limit")) {
    int64_t value = 0;
    bool digits = !text->empty() && text->size() <= 18 &&
                  std::all_of(text->begin(), text->end(),
                              [](char c) { return c >= '0' && c <= '9'; });
    if (digits) value = std::stoll(*text);
    if (!digits || value < 1) {
      return arrow::Status::Invalid("Invalid 'limit': expected a positive integer, got '",
                                    text->substr(0, 100), "'");
    }
    limit = value;
  }
  const std::string after = FindParam(route.params, "page_token").value_or("");
  ARROW_ASSIGN_OR_RAISE(auto names, db_->TableNames());
  auto begin = std::upper_bound(names.begin(), names.end(), after);
  Json tables = Json::array();
  for (auto it = begin; it != names.end(); ++it) {
    if (limit && static_cast<int64_t>(tables.size()) == *limit) {
      // More remain: the client asks for the next page from the last name it got.
      Json out{{"tables", tables}, {"page_token", tables.back()}};
      return JsonReply(out);
    }
    tables.push_back(*it);
  }
  return JsonReply(Json{{"tables", std::move(tables)}});
}

arrow::Result<Reply> Service::CreateTable(const Route& route, std::string body) const {
  const std::string mode = FindParam(route.params, "mode").value_or("create");
  CreateMode create_mode = CreateMode::kCreate;
  bool exist_ok = false;
  if (mode == "overwrite") {
    create_mode = CreateMode::kOverwrite;
  } else if (mode == "exist_ok") {
    exist_ok = true;
  } else if (mode != "create") {
    return arrow::Status::Invalid("Invalid 'mode': '", mode.substr(0, 100),
                                  "' (expected create, overwrite or exist_ok)");
  }
  ARROW_ASSIGN_OR_RAISE(
      auto reader, OpenIpcStream(std::move(body), "create", options_.max_decoded_bytes));
  // A table that describe could not name would be served to no client: refused before
  // anything is written.
  ARROW_RETURN_NOT_OK(SchemaToJson(*reader->schema()).status());
  Evict(route.table);
  auto table = db_->CreateTable(route.table, reader->schema(), reader.get(), create_mode,
                                exist_ok);
  Evict(route.table);  // again: a read may have opened the old table meanwhile
  ARROW_RETURN_NOT_OK(table);
  return JsonReply(Json{{"version", (*table)->version()}});
}

arrow::Result<Reply> Service::Describe(const Route& route, std::string_view body) const {
  ARROW_ASSIGN_OR_RAISE(auto request, ParseReadRequest(body));
  ARROW_ASSIGN_OR_RAISE(auto snapshot,
                        SnapshotAt(route.table, request.version, request.table_id));
  ARROW_ASSIGN_OR_RAISE(auto schema, SchemaToJson(*snapshot->schema()));
  Json out = Json::object();
  out["version"] = snapshot->version();
  out["schema"] = Json::parse(schema);
  // riffledb's: the schema exactly, as a base64 Arrow IPC schema message. The JSON one
  // names only the types of LanceDB's format: a string_view column is "string" there.
  // LanceDB's clients ignore unknown fields.
  ARROW_ASSIGN_OR_RAISE(auto ipc, arrow::ipc::SerializeSchema(*snapshot->schema()));
  out["arrow_schema"] = arrow::util::base64_encode(
      std::string_view(reinterpret_cast<const char*>(ipc->data()), ipc->size()));
  // riffledb's: which table this version is of (a client sends it back with its reads
  // of the version: ReadRequest::table_id). LanceDB's clients ignore unknown fields.
  if (const std::string& id = snapshot->manifest().table_id; !id.empty()) {
    out["table_id"] = id;
  }
  return JsonReply(out);
}

arrow::Result<Reply> Service::CountRows(const Route& route, std::string_view body) const {
  ARROW_ASSIGN_OR_RAISE(auto request, ParseReadRequest(body));
  ARROW_ASSIGN_OR_RAISE(auto snapshot,
                        SnapshotAt(route.table, request.version, request.table_id));
  std::shared_ptr<const Filter> filter;
  if (request.predicate) {
    ARROW_ASSIGN_OR_RAISE(filter, Filter::Make(snapshot->schema(), *request.predicate));
  }
  ARROW_ASSIGN_OR_RAISE(int64_t rows, snapshot->CountRows(filter));
  return JsonReply(Json(rows));  // a bare integer (spec §2.4)
}

arrow::Result<Reply> Service::Insert(const Route& route, std::string body) const {
  const std::string mode = FindParam(route.params, "mode").value_or("append");
  if (mode != "append" && mode != "overwrite") {
    return arrow::Status::Invalid("Invalid 'mode': '", mode.substr(0, 100),
                                  "' (expected append or overwrite)");
  }
  ARROW_ASSIGN_OR_RAISE(auto table, OpenAt(route.table, std::nullopt));
  ARROW_ASSIGN_OR_RAISE(
      auto reader, OpenIpcStream(std::move(body), "insert", options_.max_decoded_bytes));
  // An overwrite's schema becomes the table's: one describe cannot name is refused, as
  // on create.
  if (mode == "overwrite") ARROW_RETURN_NOT_OK(SchemaToJson(*reader->schema()).status());
  // Append and Overwrite commit all of the body or nothing (table.h).
  ARROW_ASSIGN_OR_RAISE(uint64_t version, mode == "overwrite"
                                              ? table->Overwrite(reader.get())
                                              : table->Append(reader.get()));
  return JsonReply(Json{{"version", version}});
}

arrow::Result<Reply> Service::Query(const Route& route, std::string_view body) const {
  ARROW_ASSIGN_OR_RAISE(const QueryRequest request, ParseQueryRequest(body));
  auto reply = QueryOnce(route, request);
  // A query of the newest version whose table was dropped and created again meanwhile
  // (by another client: the files of the version it found are gone) is a query of the
  // new table, asked again once; a table that is gone is still "not found".
  if (!reply.ok() && !request.version &&
      GetErrorKind(reply.status()) == ErrorKind::kTableNotFound) {
    auto exists = db_->HasTable(route.table);
    if (exists.ok() && *exists) {
      Evict(route.table);
      reply = QueryOnce(route, request);
    }
  }
  return reply;
}

arrow::Result<Reply> Service::QueryOnce(const Route& route,
                                        const QueryRequest& request) const {
  ARROW_ASSIGN_OR_RAISE(auto snapshot,
                        SnapshotAt(route.table, request.version, request.table_id));

  bool with_row_id = request.with_row_id;
  for (const auto& [name, source] : request.columns) {
    if (name == kRowIdColumn) with_row_id = false;  // already selected
  }
  std::shared_ptr<const Projection> projection;
  if (!request.columns.empty() || with_row_id) {
    if (request.columns_are_names) {
      std::vector<std::string> names;
      for (const auto& [name, source] : request.columns) names.push_back(name);
      ARROW_ASSIGN_OR_RAISE(projection,
                            Projection::Columns(snapshot->schema(), names, with_row_id));
    } else {
      ARROW_ASSIGN_OR_RAISE(
          projection, Projection::Make(snapshot->schema(), request.columns, with_row_id));
    }
  }

  std::shared_ptr<arrow::Schema> schema;
  BatchSource source;
  int64_t batch_rows = options_.max_batch_rows;  // the answer's batches' most rows
  // Whether the answer's batches may have dictionaries of their own: several takes, or a
  // scan of several fragments (one fragment's batches share its file's dictionaries).
  bool several_batches = false;
  std::optional<TakeFilter> take;
  if (request.filter) take = MatchTakeFilter(*request.filter);
  if (take) {
    // Rows in the order asked for, as LanceDB's permutation reader expects (spec §2.7),
    // taken max_batch_rows ids at a time.
    TakeOptions options;
    options.projection = projection;
    const auto group = static_cast<size_t>(options_.max_batch_rows);
    const size_t count = take->values.size();
    // The parser gives offset >= 0 and limit >= 1 (protocol.h).
    const size_t start = std::min(static_cast<size_t>(request.offset), count);
    const size_t end =
        request.limit
            ? start + std::min(static_cast<size_t>(*request.limit), count - start)
            : count;
    // Every id is checked before the first byte is sent, as when the answer was one
    // take: an id the version does not have is a 400, never an aborted answer.
    const bool check_all = start != 0 || end != count || count > group;
    std::function<arrow::Result<std::shared_ptr<arrow::RecordBatch>>(size_t, size_t)>
        take_range;
    if (take->row_ids) {
      auto ids = std::make_shared<std::vector<uint64_t>>(std::move(take->values));
      if (check_all) {
        TakeOptions ids_only;
        const std::vector<std::string> row_id{kRowIdColumn};
        ARROW_ASSIGN_OR_RAISE(ids_only.projection,
                              Projection::Columns(snapshot->schema(), row_id));
        ARROW_RETURN_NOT_OK(snapshot->TakeRowIds(*ids, ids_only));
      }
      take_range = [snapshot, options, ids](size_t from, size_t n) {
        return snapshot->TakeRowIds(std::span(*ids).subspan(from, n), options);
      };
    } else {
      auto offsets = std::make_shared<std::vector<int64_t>>();
      offsets->reserve(count);
      for (uint64_t value : take->values) {
        if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return arrow::Status::IndexError("Row offset ", value, " is out of range");
        }
        offsets->push_back(static_cast<int64_t>(value));
      }
      take->values = {};
      if (check_all) ARROW_RETURN_NOT_OK(snapshot->RowIdsOfOffsets(*offsets));
      take_range = [snapshot, options, offsets](size_t from, size_t n) {
        return snapshot->TakeOffsets(std::span(*offsets).subspan(from, n), options);
      };
    }
    // The first group is taken now, also when it is empty: its schema is the answer's.
    const size_t first_n = std::min(group, end - start);
    several_batches = end - start > group;
    ARROW_ASSIGN_OR_RAISE(auto first, take_range(start, first_n));
    schema = first->schema();
    source = [first = std::move(first), take_range = std::move(take_range),
              next = start + first_n, end,
              group]() mutable -> arrow::Result<std::shared_ptr<arrow::RecordBatch>> {
      if (first != nullptr) return std::exchange(first, nullptr);
      if (next >= end) return nullptr;
      const size_t n = std::min(group, end - next);
      next += n;
      return take_range(next - n, n);
    };
  } else {
    ScanOptions options;
    if (request.filter) {
      ARROW_ASSIGN_OR_RAISE(options.filter,
                            Filter::Make(snapshot->schema(), *request.filter));
    }
    options.projection = projection;
    options.offset = request.offset;
    options.limit = request.limit;
    options.max_batch_rows = options_.max_batch_rows;
    // A scan of `_rowid` alone is how LanceDB's identity Permutation reads a table (spec
    // §2.9): it takes one batch per batch of the answer, and `for batch in perm` keeps
    // only those of exactly its default batch size (100 rows), so 1024-row batches gave
    // it none. (Its builder's scan, of `_rowid` alone too, sorts the ids itself.)
    if (request.columns_are_names && request.columns.size() == 1 &&
        request.columns[0].first == kRowIdColumn) {
      options.max_batch_rows =
          std::min<int64_t>(options.max_batch_rows, kRowIdScanBatchRows);
    }
    batch_rows = options.max_batch_rows;
    several_batches = snapshot->manifest().fragments.size() > 1;
    ARROW_ASSIGN_OR_RAISE(schema, snapshot->ScanSchema(options));
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::RecordBatchReader> reader,
                          snapshot->Scan(options));
    source = [reader = std::move(reader)] { return reader->Next(); };
  }
  const bool dictionaries =
      several_batches &&
      std::any_of(schema->fields().begin(), schema->fields().end(),
                  [](const auto& f) { return HasDictionary(*f->type()); });
  ARROW_ASSIGN_OR_RAISE(auto answer, IpcFileAnswer::Make(schema, std::move(source),
                                                         batch_rows, dictionaries));
  // A small answer (the usual take or page) is sent whole, with its length, and any
  // failure is an error reply; a larger one is streamed.
  ARROW_RETURN_NOT_OK(answer->Fill(options_.max_buffered_answer_bytes));
  Reply reply;
  reply.content_type = answer->content_type();
  if (answer->done()) {
    reply.body = answer->TakePending();
  } else {
    reply.stream = std::move(answer);
  }
  return reply;
}

arrow::Result<Reply> Service::DropTable(const Route& route) const {
  Evict(route.table);
  arrow::Status dropped = db_->DropTable(route.table, /*ignore_missing=*/false);
  Evict(route.table);  // again: a read may have reopened it meanwhile
  ARROW_RETURN_NOT_OK(dropped);
  return JsonReply(Json::object());
}

arrow::Result<Reply> Service::ListVersions(const Route& route) const {
  ARROW_ASSIGN_OR_RAISE(auto table, OpenAt(route.table, std::nullopt));
  ARROW_ASSIGN_OR_RAISE(auto versions, table->ListVersions());
  Json list = Json::array();
  for (const auto& v : versions) {
    Json entry{{"version", v.version}, {"metadata", Json::object()}};
    if (v.timestamp_ms >= 0) {
      entry["timestamp"] = Rfc3339(v.timestamp_ms);
      entry["metadata"]["operation"] = v.operation;
    } else {
      entry["metadata"]["damaged"] = "true";
    }
    list.push_back(std::move(entry));
  }
  return JsonReply(Json{{"versions", std::move(list)}});
}

}  // namespace riffledb::remote
