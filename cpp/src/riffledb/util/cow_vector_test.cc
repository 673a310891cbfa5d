#include "riffledb/util/cow_vector.h"

#include <gmock/gmock.h>

#include <string>
#include <thread>
#include <vector>

namespace riffledb {
namespace {

using ::testing::ElementsAre;

TEST(CowVector, CopiesShareOneBufferAndKeepTheirOwnSize) {
  CowVector<std::string> a = {"x", "y"};
  CowVector<std::string> b = a;
  EXPECT_TRUE(b.shares_with(a));
  EXPECT_EQ(a.begin(), b.begin());  // one buffer: the copy copied no element

  b.push_back("z");  // the buffer holds exactly two: copied into one of five
  EXPECT_FALSE(b.shares_with(a));
  EXPECT_NE(a.begin(), b.begin());
  EXPECT_THAT(a.to_vector(), ElementsAre("x", "y"));
  EXPECT_THAT(b.to_vector(), ElementsAre("x", "y", "z"));
  EXPECT_FALSE(b.extends(a));  // another buffer: not known without comparing

  CowVector<std::string> c = b;
  c.push_back("w");  // room in b's buffer: written in place
  EXPECT_EQ(c.begin(), b.begin());
  EXPECT_TRUE(c.extends(b));
  EXPECT_FALSE(b.extends(c));
  EXPECT_THAT(b.to_vector(), ElementsAre("x", "y", "z"));
  EXPECT_THAT(c.to_vector(), ElementsAre("x", "y", "z", "w"));
}

// A chain of copies, each appending to the one before (a table's commits), shares one
// buffer: appending copies no element until the buffer is full.
TEST(CowVector, AppendingToTheNewestCopyWritesInPlace) {
  CowVector<std::string> list;
  list.push_back("0");
  std::vector<CowVector<std::string>> versions = {list};
  for (int i = 1; i < 6; ++i) {
    CowVector<std::string> next = versions.back();
    next.push_back(std::to_string(i));
    versions.push_back(next);
  }
  // Capacity 8 from the first append: all six share the first buffer.
  for (const auto& version : versions) {
    EXPECT_EQ(version.begin(), versions.back().begin());
    EXPECT_TRUE(versions.back().extends(version));
  }
  for (size_t i = 0; i < versions.size(); ++i) {
    ASSERT_EQ(versions[i].size(), i + 1);
    EXPECT_EQ(versions[i].back(), std::to_string(i));
  }
}

// Two copies of one list append different elements: the first writes in place, the
// second finds the slot taken and copies, so neither sees the other's element.
TEST(CowVector, ASecondAppendToTheSameCopyCopies) {
  CowVector<int> base;
  base.reserve(8);
  base.push_back(1);
  CowVector<int> a = base;
  CowVector<int> b = base;
  a.push_back(2);
  b.push_back(3);
  EXPECT_THAT(a.to_vector(), ElementsAre(1, 2));
  EXPECT_THAT(b.to_vector(), ElementsAre(1, 3));
  EXPECT_THAT(base.to_vector(), ElementsAre(1));
  EXPECT_EQ(a.begin(), base.begin());
  EXPECT_NE(b.begin(), base.begin());
  EXPECT_TRUE(a.extends(base));
  EXPECT_FALSE(b.extends(base));  // same elements, but not known without comparing
  EXPECT_FALSE(b.extends(a));
  // After the copy, b appends in place to its own buffer.
  const int* before = b.begin();
  b.push_back(4);
  EXPECT_EQ(b.begin(), before);
  EXPECT_THAT(b.to_vector(), ElementsAre(1, 3, 4));
}

TEST(CowVector, AssignAndClearReplaceTheBuffer) {
  CowVector<int> a = {1, 2, 3};
  CowVector<int> b = a;
  b.assign({1, 2, 3});
  EXPECT_FALSE(b.extends(a));  // a new buffer, even with equal elements
  EXPECT_TRUE(a == b);
  b.assign({9});
  EXPECT_THAT(b.to_vector(), ElementsAre(9));
  EXPECT_THAT(a.to_vector(), ElementsAre(1, 2, 3));
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_TRUE(b.extends(CowVector<int>()));  // everything extends the empty list
  EXPECT_FALSE(b.extends(a));
  b.assign({});
  EXPECT_TRUE(b.empty());
}

TEST(CowVector, ReadingNeverCopies) {
  CowVector<int> a = {1, 2, 3};
  CowVector<int> b = a;
  int sum = 0;
  for (int v : b) sum += v;
  sum += b[1] + b.front() + b.back() + static_cast<int>(b.size()) + b.at(0);
  EXPECT_EQ(sum, 6 + 2 + 1 + 3 + 3 + 1);
  EXPECT_TRUE(b.shares_with(a));
  EXPECT_EQ(b.span().data(), a.begin());
  EXPECT_THROW((void)b.at(3), std::out_of_range);
}

TEST(CowVector, EmptyAndEquality) {
  CowVector<int> empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.span().empty());
  EXPECT_EQ(empty.begin(), empty.end());
  CowVector<int> a = {1, 2};
  CowVector<int> b = std::vector<int>{1, 2};
  EXPECT_FALSE(a.shares_with(b));
  EXPECT_TRUE(a == b);  // equal elements
  CowVector<int> c = a;
  c.push_back(3);
  EXPECT_FALSE(a == c);
  EXPECT_FALSE(empty == a);
}

TEST(CowVector, ReserveKeepsTheElementsAndAppendsInPlace) {
  CowVector<int> a = {1, 2};
  a.reserve(100);
  const int* buffer = a.begin();
  for (int i = 3; i <= 100; ++i) a.push_back(i);
  EXPECT_EQ(a.begin(), buffer);
  EXPECT_EQ(a.size(), 100u);
  EXPECT_EQ(a[0], 1);
  EXPECT_EQ(a[99], 100);
}

// Copies of one original appended to from many threads at once: exactly one append
// per slot wins in place, every other copies, and each thread sees the original plus
// its own elements only.
TEST(CowVector, ConcurrentAppendsToCopiesStayIndependent) {
  CowVector<int> original = std::vector<int>(1000, 1);
  original.reserve(4000);
  std::vector<std::thread> threads;
  std::vector<int> bad(8, 0);
  std::vector<int> in_place(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round) {
        CowVector<int> copy = original;
        copy.push_back(t);
        in_place[t] += copy.begin() == original.begin();
        copy.push_back(round);
        if (copy.size() != 1002 || copy[1000] != t || copy[1001] != round ||
            copy[999] != 1 || copy[0] != 1) {
          ++bad[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(bad, ElementsAre(0, 0, 0, 0, 0, 0, 0, 0));
  int total_in_place = 0;
  for (int n : in_place) total_in_place += n;
  EXPECT_EQ(total_in_place, 1);  // slot 1000 of the shared buffer, claimed once
  EXPECT_EQ(original.size(), 1000u);
  EXPECT_EQ(original[999], 1);
}

}  // namespace
}  // namespace riffledb
