#include "riffledb/util/cow_vector.h"

#include <gmock/gmock.h>

#include <string>
#include <thread>
#include <vector>

namespace riffledb {
namespace {

using ::testing::ElementsAre;

TEST(CowVector, CopiesShareUntilOneChanges) {
  CowVector<std::string> a = {"x", "y"};
  CowVector<std::string> b = a;
  EXPECT_TRUE(b.shares_with(a));
  EXPECT_EQ(&a.vector(), &b.vector());  // one buffer: the copy copied no element

  b.push_back("z");
  EXPECT_FALSE(b.shares_with(a));
  EXPECT_THAT(a.vector(), ElementsAre("x", "y"));
  EXPECT_THAT(b.vector(), ElementsAre("x", "y", "z"));

  b.mutate()[0] = "w";  // no longer shared: changed in place
  EXPECT_THAT(b.vector(), ElementsAre("w", "y", "z"));
  EXPECT_THAT(a.vector(), ElementsAre("x", "y"));
}

TEST(CowVector, ReadingANonConstCopyNeverCopies) {
  CowVector<int> a = {1, 2, 3};
  CowVector<int> b = a;
  int sum = 0;
  for (int v : b) sum += v;  // const begin/end: no detach
  sum += b[1] + b.front() + b.back() + static_cast<int>(b.size()) + b.at(0);
  EXPECT_EQ(sum, 6 + 2 + 1 + 3 + 3 + 1);
  EXPECT_TRUE(b.shares_with(a));
}

TEST(CowVector, ClearEmptyAndEquality) {
  CowVector<int> empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_TRUE(empty.vector().empty());
  CowVector<int> a = {1, 2};
  CowVector<int> b = std::vector<int>{1, 2};
  EXPECT_FALSE(a.shares_with(b));
  EXPECT_TRUE(a == b);  // equal elements
  CowVector<int> c = a;
  c.clear();
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(a.size(), 2u);
  EXPECT_FALSE(a == c);
  c.push_back(7);
  EXPECT_THAT(c.vector(), ElementsAre(7));
}

// Copies made and changed in many threads from one shared original: each thread sees
// the original plus its own change, and the original stays as it was.
TEST(CowVector, ConcurrentCopiesChangeIndependently) {
  const CowVector<int> original = std::vector<int>(1000, 1);
  std::vector<std::thread> threads;
  std::vector<int> bad(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 200; ++round) {
        CowVector<int> copy = original;
        copy.push_back(t);
        copy.mutate()[0] = t;
        if (copy.size() != 1001 || copy[0] != t || copy[1000] != t || copy[999] != 1) {
          ++bad[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(bad, ElementsAre(0, 0, 0, 0, 0, 0, 0, 0));
  EXPECT_EQ(original.size(), 1000u);
  EXPECT_EQ(original[0], 1);
}

}  // namespace
}  // namespace riffledb
