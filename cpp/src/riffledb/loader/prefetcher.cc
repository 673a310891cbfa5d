#include "riffledb/loader/prefetcher.h"

#include <arrow/util/byte_size.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <utility>

#include "riffledb/util/pid.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb::loader {

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

arrow::Result<std::shared_ptr<arrow::RecordBatch>> RunRead(const Read& read) {
  if (read.offsets.empty()) {
    return read.reader->TakeRange(read.start, read.length, *read.selection);
  }
  return read.reader->TakeOffsets(read.offsets, *read.selection);
}

}  // namespace

struct Prefetcher::State {
  struct Slot {
    bool done = false;
    arrow::Result<std::shared_ptr<arrow::RecordBatch>> result =
        arrow::Status::Invalid("not read");
    int64_t bytes = 0;
    TaskHandle handle;
  };

  std::vector<Read> plan;
  PrefetchOptions options;
  uint64_t generation = ForkGeneration();
  std::unique_ptr<ThreadPool> pool;

  mutable std::mutex mu;
  std::condition_variable read_done;  // a read finished (for NextWithin)
  std::vector<Slot> slots;            // guarded by mu
  int64_t next = 0;                   // the consumer's next index
  int64_t submitted = 0;              // reads handed to the pool
  int64_t queued_batches = 0;         // read, index >= next
  int64_t queued_rows = 0;
  int64_t queued_bytes = 0;
  bool closed = false;
  arrow::Status failed;  // the error Next() returned; later calls return it too
  PrefetchStats stats;

  int64_t size() const { return static_cast<int64_t>(plan.size()); }

  // Rows of the reads started and not finished, and the bytes per row of the ones that
  // finished: in-flight reads count against max_bytes at that rate.
  int64_t inflight_rows = 0;
  int64_t read_rows = 0;
  int64_t read_bytes = 0;

  static int64_t RowsOf(const Read& read) {
    return read.offsets.empty() ? read.length : static_cast<int64_t>(read.offsets.size());
  }

  bool WithinBytes() const {
    if (read_rows == 0) return inflight_rows == 0;  // size unknown: one read first
    const double per_row = static_cast<double>(read_bytes) / read_rows;
    return static_cast<double>(queued_bytes) + per_row * inflight_rows <
           static_cast<double>(options.max_bytes);
  }

  // Starts the reads the bounds allow. Called with mu held.
  void Pump() {
    while (!closed && failed.ok() && submitted < size() &&
           submitted - next < options.max_batches &&
           (submitted == next || WithinBytes())) {
      const int64_t index = submitted++;
      inflight_rows += RowsOf(plan[index]);
      // The task holds a raw pointer: Close() waits for every task before the state
      // goes (the pool, which the state owns, must not be destroyed by one of its tasks).
      slots[index].handle = pool->Submit([this, index] { return ReadOne(index); });
    }
  }

  arrow::Status ReadOne(int64_t index) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (closed) return arrow::Status::OK();
    }
    const int64_t began = NowNs();
    auto result = RunRead(plan[index]);
    const int64_t took = NowNs() - began;
    int64_t bytes = 0;
    if (result.ok()) bytes = arrow::util::TotalBufferSize(**result);
    std::lock_guard<std::mutex> lock(mu);
    stats.read_ns += took;
    Slot& slot = slots[index];
    inflight_rows -= RowsOf(plan[index]);
    if (result.ok()) {
      read_rows += (*result)->num_rows();
      read_bytes += bytes;
    }
    slot.result = std::move(result);
    slot.bytes = bytes;
    slot.done = true;
    ++queued_batches;
    queued_bytes += bytes;
    if (slot.result.ok()) queued_rows += (*slot.result)->num_rows();
    Pump();
    read_done.notify_all();
    return arrow::Status::OK();
  }

  // Takes slot `next` (done), with mu held.
  arrow::Result<std::optional<Prefetched>> Take() {
    Slot& slot = slots[next];
    auto result = std::move(slot.result);
    slot.result = arrow::Status::Invalid("taken");
    slot.handle = TaskHandle();
    const int64_t index = next++;
    --queued_batches;
    queued_bytes -= slot.bytes;
    if (result.ok()) queued_rows -= (*result)->num_rows();
    if (!result.ok()) {
      failed = result.status();
      return failed;
    }
    std::shared_ptr<arrow::RecordBatch> batch = std::move(result).ValueUnsafe();
    ++stats.batches;
    stats.rows += batch->num_rows();
    stats.bytes += slot.bytes;
    // Refill once half the window is free: reads then run back to back on the threads,
    // and the consumer wakes a thread once per several batches, not once per batch.
    if (submitted - next <= options.max_batches / 2) Pump();
    return Prefetched{std::move(batch), plan[index].tag, index};
  }

  arrow::Status CheckProcess() const {
    if (generation != ForkGeneration()) {
      return arrow::Status::Invalid(
          "this prefetching iterator was started in another process (before fork()); "
          "start a new one in this process");
    }
    return arrow::Status::OK();
  }
};

Prefetcher::Prefetcher(std::shared_ptr<State> state) : state_(std::move(state)) {}

arrow::Result<std::unique_ptr<Prefetcher>> Prefetcher::Start(std::vector<Read> plan,
                                                             PrefetchOptions options) {
  if (options.threads < 1) {
    return arrow::Status::Invalid("prefetch threads must be at least 1, got ",
                                  options.threads);
  }
  if (options.max_batches < 1) {
    return arrow::Status::Invalid("prefetch max_batches must be at least 1, got ",
                                  options.max_batches);
  }
  if (options.max_bytes < 1) {
    return arrow::Status::Invalid("prefetch max_bytes must be at least 1, got ",
                                  options.max_bytes);
  }
  for (size_t i = 0; i < plan.size(); ++i) {
    const Read& read = plan[i];
    if (read.reader == nullptr || read.selection == nullptr) {
      return arrow::Status::Invalid("prefetch plan: read ", i,
                                    " has no reader or selection");
    }
    if (read.offsets.empty() && (read.start < 0 || read.length < 0 ||
                                 read.start + read.length > read.reader->count_rows())) {
      return arrow::Status::IndexError("prefetch plan: read ", i, " asks for rows [",
                                       read.start, ", ", read.start + read.length,
                                       ") of a view of ", read.reader->count_rows(),
                                       " rows");
    }
  }
  auto state = std::make_shared<State>();
  state->slots.resize(plan.size());
  state->plan = std::move(plan);
  state->options = options;
  state->pool = std::make_unique<ThreadPool>(options.threads);
  {
    std::lock_guard<std::mutex> lock(state->mu);
    state->Pump();
  }
  return std::unique_ptr<Prefetcher>(new Prefetcher(std::move(state)));
}

Prefetcher::~Prefetcher() {
  if (state_ == nullptr) return;
  if (state_->generation != ForkGeneration()) {
    // A forked copy: its reads belong to the parent, and its mutex may have been held
    // by one of the parent's threads at fork(). Leave the state alone (leaked).
    new std::shared_ptr<State>(std::move(state_));
    return;
  }
  Close();
}

arrow::Result<std::optional<Prefetched>> Prefetcher::Next() {
  State& s = *state_;
  ARROW_RETURN_NOT_OK(s.CheckProcess());
  TaskHandle pending;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.failed.ok()) return s.failed;
    if (s.closed || s.next >= s.size()) return std::nullopt;
    if (s.slots[s.next].done) return s.Take();
    pending = s.slots[s.next].handle;
  }
  // Wait() runs the read here if no pool thread has started it: progress is certain.
  const int64_t began = NowNs();
  ARROW_RETURN_NOT_OK(pending.Wait());
  std::lock_guard<std::mutex> lock(s.mu);
  s.stats.wait_ns += NowNs() - began;
  if (!s.failed.ok()) return s.failed;
  if (s.closed) return std::nullopt;
  return s.Take();
}

arrow::Result<std::optional<Prefetched>> Prefetcher::TryNext(bool* end) {
  State& s = *state_;
  *end = false;
  ARROW_RETURN_NOT_OK(s.CheckProcess());
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.failed.ok()) return s.failed;
  if (s.closed || s.next >= s.size()) {
    *end = true;
    return std::nullopt;
  }
  if (!s.slots[s.next].done) return std::nullopt;
  return s.Take();
}

arrow::Result<std::optional<Prefetched>> Prefetcher::NextWithin(
    std::chrono::microseconds timeout, bool* end) {
  State& s = *state_;
  *end = false;
  ARROW_RETURN_NOT_OK(s.CheckProcess());
  std::unique_lock<std::mutex> lock(s.mu);
  const auto ready = [&] {
    return !s.failed.ok() || s.closed || s.next >= s.size() || s.slots[s.next].done;
  };
  if (!ready()) {
    const int64_t began = NowNs();
    s.read_done.wait_for(lock, timeout, ready);
    s.stats.wait_ns += NowNs() - began;
  }
  if (!s.failed.ok()) return s.failed;
  if (s.closed || s.next >= s.size()) {
    *end = true;
    return std::nullopt;
  }
  if (!s.slots[s.next].done) return std::nullopt;
  return s.Take();
}

void Prefetcher::Close() {
  State& s = *state_;
  if (!s.CheckProcess().ok()) return;
  std::vector<TaskHandle> handles;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.closed) return;
    s.closed = true;
    for (int64_t i = s.next; i < s.submitted; ++i) handles.push_back(s.slots[i].handle);
  }
  // Reads not started return at once (they see `closed`); running ones finish.
  for (const TaskHandle& handle : handles) (void)handle.Wait();
  std::lock_guard<std::mutex> lock(s.mu);
  for (auto& slot : s.slots) slot.result = arrow::Status::Invalid("closed");
  s.queued_batches = 0;
  s.queued_rows = 0;
  s.queued_bytes = 0;
}

PrefetchStats Prefetcher::stats() const {
  const State& s = *state_;
  if (!s.CheckProcess().ok()) return {};  // the parent's mutex may be held forever
  std::lock_guard<std::mutex> lock(s.mu);
  PrefetchStats out = s.stats;
  out.queued_batches = s.queued_batches;
  out.queued_rows = s.queued_rows;
  out.queued_bytes = s.queued_bytes;
  return out;
}

int64_t Prefetcher::size() const { return state_->size(); }

}  // namespace riffledb::loader
