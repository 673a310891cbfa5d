#include "riffledb/format/segments.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "riffledb/testing/testing.h"
#include "riffledb/util/crc32c.h"

namespace riffledb::format {
namespace {

FragmentInfo Fragment(uint32_t id) {
  return {id,
          "data/f" + std::to_string(id) + ".arrow",
          1,
          std::nullopt,
          FileDigest{100, id},
          std::nullopt};
}

Manifest Base() {
  Manifest m;
  m.version = 1;
  m.operation = "create";
  m.schema = arrow::schema({arrow::field("x", arrow::int64())});
  return m;
}

// A manifest of `n` fragments grown by one-fragment appends, planned at each step.
Manifest Grown(uint32_t n) {
  Manifest m = Base();
  m.next_fragment_id = 100000;
  for (uint32_t i = 0; i < n; ++i) {
    m.fragments.push_back(Fragment(i));
    EXPECT_TRUE(PlanSegments(&m).ok());
    m.MarkStored();  // as a commit does
  }
  return m;
}

// Checks what PlanSegments promises about one list and the files it returned.
template <typename Entry>
void ExpectCovers(const std::vector<Segment<Entry>>& segments,
                  const std::vector<Entry>& list,
                  const std::map<std::string, std::string>& files) {
  size_t pos = 0;
  for (const auto& segment : segments) {
    ASSERT_NE(segment.entries, nullptr);
    ASSERT_EQ(static_cast<int64_t>(segment.entries->size()), segment.count);
    for (const auto& entry : *segment.entries) ASSERT_EQ(entry, list.at(pos++));
    auto file = files.find(segment.path);
    if (file != files.end()) {  // written by this plan: the digest is of its bytes
      EXPECT_EQ(segment.digest.size, static_cast<int64_t>(file->second.size()));
      EXPECT_EQ(segment.digest.crc32c, Crc32c(file->second));
    }
  }
  EXPECT_LE(list.size() - pos, static_cast<size_t>(kMaxInlineEntries));
}

// One-fragment appends, as a table of one-row adds sees them: segments are reused, the
// number of segments stays logarithmic and every entry is written a few times only.
TEST(PlanSegments, AppendsWriteLittleAndKeepFewSegments) {
  Manifest m = Base();
  std::map<uint32_t, int> writes;  // fragment id -> times written to a segment
  size_t max_segments = 0, files_written = 0;
  for (uint32_t n = 1; n <= 3000; ++n) {
    Manifest next = m;
    next.version = n + 1;
    next.next_fragment_id = n;
    next.history.push_back(m.record());
    next.fragments.push_back(Fragment(n - 1));
    std::set<std::string> before;
    for (const auto& s : m.fragment_segments) before.insert(s.path);
    ASSERT_OK_AND_ASSIGN(auto files, PlanSegments(&next));
    std::map<std::string, std::string> by_path;
    for (const auto& f : files) {
      EXPECT_EQ(f.path.rfind("_segments/", 0), 0u);
      EXPECT_FALSE(before.count(f.path)) << "a segment name was reused";
      by_path[f.path] = f.bytes;
    }
    files_written += files.size();
    ExpectCovers(next.fragment_segments, next.fragments.to_vector(), by_path);
    ExpectCovers(next.history_segments, next.history.to_vector(), by_path);
    for (const auto& s : next.fragment_segments) {
      if (by_path.count(s.path)) {
        for (const auto& f : *s.entries) ++writes[f.id];
      }
    }
    max_segments = std::max(max_segments, next.fragment_segments.size());
    next.MarkStored();
    m = std::move(next);
  }
  // 3000 entries: size classes 0..4 (from 36, 144, 576, 2304 entries), at most 3
  // segments each.
  EXPECT_LE(max_segments, 15u);
  int max_writes = 0;
  for (const auto& [id, count] : writes) max_writes = std::max(max_writes, count);
  EXPECT_LE(max_writes, 5);
  // A segment is written once per 9 appends, plus the merges: far fewer than commits.
  EXPECT_LT(files_written, 2u * 3000u / 9u * 2u);
}

TEST(PlanSegments, AnAppendReusesEverySegment) {
  Manifest m = Grown(100);  // 100 = 2 x 36 + 3 x 9 + 1: 5 segments, 1 inline
  ASSERT_EQ(m.fragment_segments.size(), 5u);
  Manifest next = m;
  next.fragments.push_back(Fragment(100));
  ASSERT_OK_AND_ASSIGN(auto files, PlanSegments(&next));
  EXPECT_TRUE(files.empty());
  ASSERT_EQ(next.fragment_segments.size(), m.fragment_segments.size());
  for (size_t i = 0; i < m.fragment_segments.size(); ++i) {
    EXPECT_EQ(next.fragment_segments[i].path, m.fragment_segments[i].path);
  }
}

TEST(PlanSegments, AChangedEntryRewritesOnlyItsSegment) {
  Manifest m = Grown(100);
  ASSERT_GE(m.fragment_segments.size(), 2u);
  Manifest next = m;
  const int64_t first = m.fragment_segments[0].count;
  next.fragments.update(first, [&](FragmentInfo& f) {
    f.deletion = DeletionFileInfo{"_deletions/d.arrow", 1, std::nullopt};
  });
  ASSERT_OK_AND_ASSIGN(auto files, PlanSegments(&next));
  ASSERT_EQ(files.size(), 1u);
  ASSERT_EQ(next.fragment_segments.size(), m.fragment_segments.size());
  for (size_t i = 0; i < m.fragment_segments.size(); ++i) {
    EXPECT_EQ(next.fragment_segments[i].count, m.fragment_segments[i].count);
    EXPECT_EQ(next.fragment_segments[i].path == m.fragment_segments[i].path, i != 1) << i;
  }
  std::map<std::string, std::string> by_path{{files[0].path, files[0].bytes}};
  ExpectCovers(next.fragment_segments, next.fragments.to_vector(), by_path);
}

TEST(PlanSegments, AShorterListStartsOver) {
  Manifest m = Base();
  for (uint32_t i = 0; i < 100; ++i) m.fragments.push_back(Fragment(i));
  m.next_fragment_id = 200;
  ASSERT_OK_AND_ASSIGN(auto files, PlanSegments(&m));
  Manifest next = m;  // an overwrite: other fragments
  next.fragments.clear();
  for (uint32_t i = 100; i < 103; ++i) next.fragments.push_back(Fragment(i));
  ASSERT_OK_AND_ASSIGN(files, PlanSegments(&next));
  EXPECT_TRUE(files.empty());
  EXPECT_TRUE(next.fragment_segments.empty());  // three entries: inline
  ExpectCovers(next.fragment_segments, next.fragments.to_vector(), {});
}

TEST(PlanSegments, ALargeAppendAbsorbsTheSmallSegmentsBeforeIt) {
  Manifest m = Base();
  for (uint32_t i = 0; i < 20; ++i) m.fragments.push_back(Fragment(i));
  m.next_fragment_id = 1000;
  ASSERT_OK_AND_ASSIGN(auto files, PlanSegments(&m));
  ASSERT_EQ(m.fragment_segments.size(), 1u);  // 20 > 8: one segment of class 0
  Manifest next = m;
  for (uint32_t i = 20; i < 600; ++i) next.fragments.push_back(Fragment(i));
  ASSERT_OK_AND_ASSIGN(files, PlanSegments(&next));
  // Size classes never increase along the list: the 20 are merged into the 580.
  ASSERT_EQ(next.fragment_segments.size(), 1u);
  EXPECT_EQ(next.fragment_segments[0].count, 600);
}

}  // namespace
}  // namespace riffledb::format
