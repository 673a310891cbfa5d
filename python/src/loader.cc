// Bindings for the prefetching pipeline (riffledb/loader/prefetcher.h).
#include <nanobind/nanobind.h>
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <chrono>
#include <memory>
#include <thread>
#include <tuple>
#include <vector>

#include "bindings.h"
#include "errors.h"
#include "riffledb/loader/prefetcher.h"

namespace nb = nanobind;

namespace riffledb::python {

namespace {

using loader::Prefetched;
using loader::Prefetcher;

// (tag, Batch) of a prefetched batch.
nb::object ToPython(Prefetched&& item) {
  return nb::make_tuple(item.tag, Batch{std::move(item.batch)});
}

// A prefetcher as Python holds it: `next()` takes a batch that is ready without letting
// go of the GIL (a thread busy in Python would make every release cost a switch
// interval) and releases it only to wait.
class PyPrefetcher {
 public:
  static constexpr std::chrono::microseconds kHold{1000};

  explicit PyPrefetcher(std::unique_ptr<Prefetcher> prefetcher)
      : prefetcher_(std::move(prefetcher)) {}
  PyPrefetcher(PyPrefetcher&&) = default;

  // Closing waits for the reads under way (a slow S3 read, say): not with the GIL.
  ~PyPrefetcher() {
    if (prefetcher_ != nullptr) {
      nb::gil_scoped_release release;
      prefetcher_.reset();
    }
  }

  nb::object Next() {
    bool end = false;
    auto ready = ValueOrThrow(prefetcher_->TryNext(&end));
    // A batch is often a few microseconds away: wait for it a little while holding the
    // GIL (asleep, leaving the CPU to the reads). Released, the GIL goes to any thread
    // busy in Python, and getting it back can take a whole switch interval (5 ms), far
    // longer than the read.
    if (!ready.has_value() && !end) {
      ready = ValueOrThrow(prefetcher_->NextWithin(kHold, &end));
    }
    if (!ready.has_value() && !end) {
      ready = ValueOrThrow(WithoutGil([&] { return prefetcher_->Next(); }));
    }
    if (!ready.has_value()) return nb::none();
    return ToPython(std::move(*ready));
  }

  nb::object TryNext() {
    bool end = false;
    auto ready = ValueOrThrow(prefetcher_->TryNext(&end));
    if (!ready.has_value()) return end ? nb::object(nb::bool_(false)) : nb::none();
    return ToPython(std::move(*ready));
  }

  void Close() {
    WithoutGil([&] {
      prefetcher_->Close();
      return 0;
    });
  }

  nb::dict Stats() const {
    const auto s = prefetcher_->stats();
    nb::dict out;
    out["batches"] = s.batches;
    out["rows"] = s.rows;
    out["bytes"] = s.bytes;
    out["read_ns"] = s.read_ns;
    out["wait_ns"] = s.wait_ns;
    out["queued_batches"] = s.queued_batches;
    out["queued_rows"] = s.queued_rows;
    out["queued_bytes"] = s.queued_bytes;
    return out;
  }

  int64_t size() const { return prefetcher_->size(); }

 private:
  std::unique_ptr<Prefetcher> prefetcher_;
};

using ReadTuple = std::tuple<std::shared_ptr<PermutationReader>,
                             std::shared_ptr<BoundSelection>, int64_t, int64_t, int64_t>;

}  // namespace

void RegisterLoader(nb::module_& m) {
  // Reads (reader, selection, start, length, tag) of views, in this order, ahead of the
  // consumer. `next()`: (tag, Batch), or None after the last; `try_next()`: (tag,
  // Batch), None if not read yet, False after the last.
  nb::class_<PyPrefetcher>(m, "Prefetcher")
      .def_static(
          "start",
          [](const std::vector<ReadTuple>& reads, int threads, int64_t max_batches,
             int64_t max_bytes) {
            std::vector<loader::Read> plan;
            plan.reserve(reads.size());
            for (const auto& [reader, selection, start, length, tag] : reads) {
              plan.push_back({reader, selection, start, length, {}, tag});
            }
            loader::PrefetchOptions options{threads, max_batches, max_bytes};
            return PyPrefetcher(ValueOrThrow(
                WithoutGil([&] { return Prefetcher::Start(std::move(plan), options); })));
          },
          nb::arg("reads"), nb::arg("threads"), nb::arg("max_batches"),
          nb::arg("max_bytes"))
      .def("next", &PyPrefetcher::Next)
      .def("try_next", &PyPrefetcher::TryNext)
      .def("close", &PyPrefetcher::Close)
      .def("stats", &PyPrefetcher::Stats)
      .def_prop_ro("size", &PyPrefetcher::size);
}

}  // namespace riffledb::python
