#include "riffledb/util/pid.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <set>
#include <thread>
#include <vector>

#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

TEST(Pid, CurrentPidIsGetpid) {
  EXPECT_EQ(CurrentPid(), static_cast<int>(getpid()));
  EXPECT_EQ(ForkGeneration(), ForkGeneration());
}

struct Handle {
  explicit Handle(int id) : id(id) {}
  int id;
};

TEST(PerProcess, BuildsOnceAndReturnsTheSameHandle) {
  PerProcess<Handle> holder;
  EXPECT_EQ(holder.built_pid(), 0);
  int builds = 0;
  auto factory = [&]() -> arrow::Result<std::shared_ptr<Handle>> {
    return std::make_shared<Handle>(++builds);
  };
  ASSERT_OK_AND_ASSIGN(auto first, holder.Get(factory));
  ASSERT_OK_AND_ASSIGN(auto second, holder.Get(factory));
  EXPECT_EQ(first, second);
  EXPECT_EQ(builds, 1);
  EXPECT_EQ(holder.built_pid(), CurrentPid());

  holder.Reset();
  EXPECT_EQ(holder.built_pid(), 0);
  ASSERT_OK_AND_ASSIGN(auto third, holder.Get(factory));
  EXPECT_NE(third, first);
  EXPECT_EQ(third->id, 2);
  EXPECT_EQ(first->id, 1);  // handles already given out stay valid
}

TEST(PerProcess, FactoryMayReturnAPlainSharedPtr) {
  PerProcess<Handle> holder;
  ASSERT_OK_AND_ASSIGN(auto h, holder.Get([] { return std::make_shared<Handle>(7); }));
  EXPECT_EQ(h->id, 7);
}

TEST(PerProcess, FactoryErrorsAreReturnedAndNothingIsStored) {
  PerProcess<Handle> holder;
  auto failing = []() -> arrow::Result<std::shared_ptr<Handle>> {
    return arrow::Status::IOError("connection refused");
  };
  ASSERT_RAISES_WITH_MESSAGE(IOError, "connection refused", holder.Get(failing));
  ASSERT_RAISES(Invalid, holder.Get([] { return std::shared_ptr<Handle>(); }));
  EXPECT_EQ(holder.built_pid(), 0);
  ASSERT_OK_AND_ASSIGN(auto h, holder.Get([] { return std::make_shared<Handle>(1); }));
  EXPECT_EQ(h->id, 1);
}

TEST(PerProcess, ConcurrentGetsAgreeOnOneHandle) {
  PerProcess<Handle> holder;
  std::atomic<int> builds{0};
  std::vector<std::shared_ptr<Handle>> seen(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto r = holder.Get([&] { return std::make_shared<Handle>(++builds); });
      if (r.ok()) seen[t] = *r;
    });
  }
  for (std::thread& t : threads) t.join();
  std::set<Handle*> distinct;
  for (const auto& h : seen) distinct.insert(h.get());
  EXPECT_EQ(distinct.size(), 1u);
  EXPECT_NE(*distinct.begin(), nullptr);
  EXPECT_GE(builds.load(), 1);
}

}  // namespace
}  // namespace riffledb
