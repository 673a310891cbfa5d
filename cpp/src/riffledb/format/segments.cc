#include "riffledb/format/segments.h"

#include <algorithm>
#include <memory>

#include "riffledb/io/filesystem.h"
#include "riffledb/util/crc32c.h"

namespace riffledb::format {

namespace {

// The size class of a segment: 0 up to kSegmentFanout flushes of inline entries, then
// one more per factor kSegmentFanout.
int SizeClass(int64_t count) {
  int size_class = 0;
  for (int64_t unit = (kMaxInlineEntries + 1) * kSegmentFanout; count >= unit;
       unit *= kSegmentFanout) {
    ++size_class;
  }
  return size_class;
}

template <typename Entry>
Segment<Entry> Pending(std::vector<Entry> entries) {
  Segment<Entry> segment;  // no path yet: written at the end of planning
  segment.count = static_cast<int64_t>(entries.size());
  segment.entries = std::make_shared<const std::vector<Entry>>(std::move(entries));
  return segment;
}

template <typename Entry>
Segment<Entry> Merge(const Segment<Entry>& a, const Segment<Entry>& b) {
  std::vector<Entry> entries;
  entries.reserve(static_cast<size_t>(a.count + b.count));
  entries.insert(entries.end(), a.entries->begin(), a.entries->end());
  entries.insert(entries.end(), b.entries->begin(), b.entries->end());
  return Pending(std::move(entries));
}

// `stored` is the list `segments` were planned for (Manifest::stored_fragments): while
// `list` extends it, the segments' entries are unchanged without comparing them.
template <typename Entry, typename Serialize>
arrow::Status PlanList(const CowVector<Entry>& list, const CowVector<Entry>& stored,
                       std::vector<Segment<Entry>>* segments, Serialize serialize,
                       std::vector<PendingFile>* files) {
  const size_t unchanged = list.extends(stored) ? stored.size() : 0;
  std::vector<Segment<Entry>> plan;
  size_t pos = 0;
  for (const auto& old : *segments) {
    const auto n = static_cast<size_t>(old.count);
    if (old.entries == nullptr || pos + n > list.size()) break;  // the list shrank
    auto begin = list.begin() + static_cast<std::ptrdiff_t>(pos);
    if (pos + n <= unchanged ||
        std::equal(old.entries->begin(), old.entries->end(), begin)) {
      plan.push_back(old);
    } else {
      plan.push_back(
          Pending(std::vector<Entry>(begin, begin + static_cast<std::ptrdiff_t>(n))));
    }
    pos += n;
  }
  if (static_cast<int64_t>(list.size() - pos) > kMaxInlineEntries) {
    plan.push_back(Pending(
        std::vector<Entry>(list.begin() + static_cast<std::ptrdiff_t>(pos), list.end())));
  }
  // Keep size classes non-increasing along the list, at most kSegmentFanout - 1 each.
  for (bool merged = true; merged;) {
    merged = false;
    const size_t n = plan.size();
    if (n >= 2 && SizeClass(plan[n - 2].count) < SizeClass(plan[n - 1].count)) {
      plan[n - 2] = Merge(plan[n - 2], plan[n - 1]);
      plan.pop_back();
      merged = true;
      continue;
    }
    if (n >= static_cast<size_t>(kSegmentFanout)) {
      const int size_class = SizeClass(plan[n - 1].count);
      bool same = true;
      for (size_t i = n - static_cast<size_t>(kSegmentFanout); i < n; ++i) {
        same = same && SizeClass(plan[i].count) == size_class;
      }
      if (same) {
        for (int64_t i = 1; i < kSegmentFanout; ++i) {
          Segment<Entry> last = std::move(plan.back());
          plan.pop_back();
          plan.back() = Merge(plan.back(), last);
        }
        merged = true;
      }
    }
  }
  for (auto& segment : plan) {
    if (!segment.path.empty()) continue;
    ARROW_ASSIGN_OR_RAISE(std::string bytes, serialize(*segment.entries));
    segment.path = std::string(kSegmentsDir) + "/" + io::RandomId() + ".json";
    segment.digest = {static_cast<int64_t>(bytes.size()), Crc32c(bytes)};
    files->push_back({segment.path, std::move(bytes)});
  }
  *segments = std::move(plan);
  return arrow::Status::OK();
}

}  // namespace

arrow::Result<std::vector<PendingFile>> PlanSegments(Manifest* manifest) {
  std::vector<PendingFile> files;
  ARROW_RETURN_NOT_OK(PlanList(manifest->fragments, manifest->stored_fragments,
                               &manifest->fragment_segments, SerializeFragmentSegment,
                               &files));
  ARROW_RETURN_NOT_OK(PlanList(manifest->history, manifest->stored_history,
                               &manifest->history_segments, SerializeHistorySegment,
                               &files));
  return files;
}

}  // namespace riffledb::format
