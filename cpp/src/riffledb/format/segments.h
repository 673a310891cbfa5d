// How a format-2 manifest stores its lists (docs/format.md, section 10): which segment
// files a commit reuses, rewrites or writes, so that its cost does not grow with the
// number of versions.
#pragma once

#include <arrow/result.h>

#include <cstdint>
#include <string>
#include <vector>

#include "riffledb/format/manifest.h"

namespace riffledb::format {

/// The directory of segment files, relative to the table directory.
constexpr char kSegmentsDir[] = "_segments";

/// At most this many entries of each list are written inline in the manifest.
constexpr int64_t kMaxInlineEntries = 8;
/// Four segments of one size class merge into one of the next.
constexpr int64_t kSegmentFanout = 4;

/// A file to write before the manifest that references it becomes visible.
struct PendingFile {
  std::string path;  ///< relative to the table directory
  std::string bytes;
};

/// Chooses the segments of `manifest`'s two lists and returns the new segment files:
///
/// - a segment of the manifest's base (in `*_segments`, entries read) whose entries are
///   unchanged at the same position is reused: an append writes no segment at all until
///   its inline entries exceed kMaxInlineEntries;
/// - one whose entries changed (a delete set a deletion file) is rewritten, same length;
/// - the inline entries beyond the limit become a new segment, and the newest segments
///   merge while the last kSegmentFanout share a size class (or a newer one is larger
///   than the one before it), so a list of n entries has O(log n) segments and each
///   entry is rewritten O(log n) times over the life of the table.
///
/// Sets `manifest->fragment_segments` and `history_segments` (entries and digests set).
arrow::Result<std::vector<PendingFile>> PlanSegments(Manifest* manifest);

}  // namespace riffledb::format
