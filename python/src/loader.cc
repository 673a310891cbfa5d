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
#include "riffledb/util/seqlock.h"

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
// go of the GIL, and waits for one holding it (asleep) for up to `hold`, the
// interpreter's switch interval, before it releases it to wait on. A release hands the
// GIL to any thread busy in Python, and getting it back takes that thread's whole
// switch interval, far longer than a local read; holding it that long is no worse for
// the other thread than a consumer computing in Python, which the interpreter lets run
// for a switch interval before it makes it yield.
class PyPrefetcher {
 public:
  PyPrefetcher(std::unique_ptr<Prefetcher> prefetcher, std::chrono::microseconds hold)
      : prefetcher_(std::move(prefetcher)), hold_(hold) {}
  PyPrefetcher(PyPrefetcher&&) = default;

  // Closing waits for the reads under way (a slow S3 read, say): not with the GIL.
  ~PyPrefetcher() {
    if (prefetcher_ != nullptr) {
      nb::gil_scoped_release release;
      prefetcher_.reset();
    }
  }

  // `hold`: false when other Python threads of the caller's have work to do (transforms
  // in a pool): it then waits with the GIL released at once.
  nb::object Next(bool hold) {
    bool end = false;
    auto ready = ValueOrThrow(prefetcher_->TryNext(&end));
    if (!ready.has_value() && !end && hold && hold_.count() > 0) {
      ready = ValueOrThrow(prefetcher_->NextWithin(hold_, &end));
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
  int64_t hold_us() const { return hold_.count(); }

 private:
  std::unique_ptr<Prefetcher> prefetcher_;
  std::chrono::microseconds hold_;
};

using ReadTuple = std::tuple<std::shared_ptr<PermutationReader>,
                             std::shared_ptr<BoundSelection>, int64_t, int64_t, int64_t>;

}  // namespace

void RegisterLoader(nb::module_& m) {
  // The progress records of riffledb.streaming, in a multiprocessing RawArray that
  // DataLoader workers share: a record is value words then a sequence word, at
  // `address` (ctypes.addressof of its first word; 8-byte aligned). Private: the caller
  // vouches for the address.
  m.def(
      "_seqlock_write",
      [](uintptr_t address, const std::vector<int64_t>& values) {
        util::SeqlockWrite(reinterpret_cast<int64_t*>(address), values);
      },
      nb::arg("address"), nb::arg("values"));
  // The values, or None while a write is under way (the caller retries).
  m.def(
      "_seqlock_read",
      [](uintptr_t address, size_t count) -> nb::object {
        std::vector<int64_t> out(count);
        if (!util::SeqlockTryRead(reinterpret_cast<int64_t*>(address), out)) {
          return nb::none();
        }
        return nb::cast(out);
      },
      nb::arg("address"), nb::arg("count"));
  // Reads (reader, selection, start, length, tag) of views, in this order, ahead of the
  // consumer. `next()`: (tag, Batch), or None after the last; `try_next()`: (tag,
  // Batch), None if not read yet, False after the last. `hold_us`: how long `next()`
  // waits with the GIL held before it releases it (0: it releases it at once).
  nb::class_<PyPrefetcher>(m, "Prefetcher")
      .def_static(
          "start",
          [](const std::vector<ReadTuple>& reads, int threads, int64_t max_batches,
             int64_t max_bytes, int64_t hold_us) {
            if (hold_us < 0) throw nb::value_error("hold_us must be >= 0");
            std::vector<loader::Read> plan;
            plan.reserve(reads.size());
            for (const auto& [reader, selection, start, length, tag] : reads) {
              plan.push_back({reader, selection, start, length, {}, tag});
            }
            loader::PrefetchOptions options{threads, max_batches, max_bytes};
            return PyPrefetcher(ValueOrThrow(WithoutGil([&] {
                                  return Prefetcher::Start(std::move(plan), options);
                                })),
                                std::chrono::microseconds(hold_us));
          },
          nb::arg("reads"), nb::arg("threads"), nb::arg("max_batches"),
          nb::arg("max_bytes"), nb::arg("hold_us"))
      .def("next", &PyPrefetcher::Next, nb::arg("hold") = true)
      .def("try_next", &PyPrefetcher::TryNext)
      .def("close", &PyPrefetcher::Close)
      .def("stats", &PyPrefetcher::Stats)
      .def_prop_ro("size", &PyPrefetcher::size)
      .def_prop_ro("hold_us", &PyPrefetcher::hold_us);
}

}  // namespace riffledb::python
