#include "riffledb/util/busy_poll.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/testing/fork.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using std::chrono::microseconds;

// Which of `waits` consecutive waits spun, as a string of 's' (spun) and '-' (did not),
// when the event never comes.
std::string LostSpins(BusyPoll& poll, int waits) {
  std::string pattern;
  for (int i = 0; i < waits; ++i) {
    const int64_t spins = poll.stats().spins;
    EXPECT_EQ(poll.Spin([] { return 0; }), 0);
    pattern += poll.stats().spins > spins ? 's' : '-';
  }
  return pattern;
}

// A check that finds the event at its second call: a spin that catches it.
auto SecondCallHits() {
  return [calls = 0]() mutable { return ++calls >= 2 ? 1 : 0; };
}

#define SKIP_ON_ONE_CPU()                                                \
  if (BusyPoll::MaxSpinners() == 0) {                                    \
    GTEST_SKIP() << "one usable CPU: a BusyPoll never spins (tested by " \
                    "OneCpuNeverSpins)";                                 \
  }

TEST(BusyPoll, ZeroLimitNeverSpinsNorChecks) {
  BusyPoll poll;
  bool called = false;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(poll.Spin([&] { return called = true, 1; }), 0);
  EXPECT_FALSE(called);
  EXPECT_EQ(poll.stats().spins, 0);
}

TEST(BusyPoll, ReturnsWhatReadyGave) {
  SKIP_ON_ONE_CPU();
  BusyPoll poll(microseconds(100'000));
  int calls = 0;
  EXPECT_EQ(poll.Spin([&] { return ++calls == 3 ? -1 : 0; }), -1);
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(poll.stats().spins, 1);
  EXPECT_EQ(poll.stats().hits, 1);
}

TEST(BusyPoll, AnEventAlreadyThereIsNotASpin) {
  SKIP_ON_ONE_CPU();
  BusyPoll poll(microseconds(20'000));
  int calls = 0;
  EXPECT_EQ(poll.Spin([&] { return ++calls, 7; }), 7);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(poll.stats().spins, 0);
  // Nor does it end a backoff.
  EXPECT_EQ(LostSpins(poll, 1), "s");
  EXPECT_EQ(poll.Spin([] { return 7; }), 7);
  EXPECT_EQ(LostSpins(poll, 2), "-s");  // the skip after the lost spin is still due
}

TEST(BusyPoll, ALimitIsClamped) {
  SKIP_ON_ONE_CPU();
  BusyPoll negative(microseconds(-5));
  EXPECT_EQ(LostSpins(negative, 2), "--");
  // A huge limit is one second, not an overflow of the deadline into the past.
  BusyPoll huge(microseconds::max());
  EXPECT_EQ(huge.Spin(SecondCallHits()), 1);
  EXPECT_EQ(huge.stats().hits, 1);
}

TEST(BusyPoll, ALostSpinLastsItsLimit) {
  SKIP_ON_ONE_CPU();
  BusyPoll poll(microseconds(2000));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(poll.Spin([] { return 0; }), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - start, microseconds(2000));
  EXPECT_EQ(poll.stats().spins, 1);
  EXPECT_EQ(poll.stats().hits, 0);
}

TEST(BusyPoll, LostSpinsBackOffExponentiallyUpTo64Waits) {
  SKIP_ON_ONE_CPU();
  BusyPoll poll(microseconds(1000));
  std::string expected;
  for (int skip : {1, 2, 4, 8, 16, 32, 64, 64}) expected.append(1, 's').append(skip, '-');
  expected += "s";
  EXPECT_EQ(LostSpins(poll, static_cast<int>(expected.size())), expected);
  EXPECT_EQ(poll.stats().spins, 9);
}

TEST(BusyPoll, AHitEndsTheBackoff) {
  SKIP_ON_ONE_CPU();
  // Lost spins cost their limit; a hit must come within it (the second check), also on
  // a loaded machine.
  BusyPoll poll(microseconds(20'000));
  EXPECT_EQ(LostSpins(poll, 10), "s-s--s----");
  EXPECT_EQ(poll.Spin(SecondCallHits()), 1);
  EXPECT_EQ(poll.stats().hits, 1);
  EXPECT_EQ(LostSpins(poll, 4), "s-s-");  // back to a skip of 1, then 2
}

TEST(BusyPoll, AtMostMaxSpinnersSpinAtOnce) {
  SKIP_ON_ONE_CPU();
  const int max = BusyPoll::MaxSpinners();
  EXPECT_EQ(BusyPoll::Spinners(), 0);
  // Spins nested `depth` deep on this thread hold `depth` slots.
  std::vector<std::unique_ptr<BusyPoll>> polls;
  for (int i = 0; i <= max; ++i) {
    polls.push_back(std::make_unique<BusyPoll>(microseconds(100'000)));
  }
  int innermost_calls = 0;
  std::function<int(int)> nest = [&](int depth) -> int {
    if (depth == max) {
      EXPECT_EQ(BusyPoll::Spinners(), max);
      // No slot left: the last one blocks after its first check.
      return polls[depth]->Spin([&] { return ++innermost_calls, 0; }) == 0 ? 1 : -1;
    }
    // Each level spins (its first check finds nothing), and holds its slot while the
    // next level runs inside its check.
    return polls[depth]->Spin(
        [&, calls = 0]() mutable { return ++calls == 1 ? 0 : nest(depth + 1); });
  };
  EXPECT_EQ(nest(0), 1);
  EXPECT_EQ(innermost_calls, 1);
  EXPECT_EQ(polls[max]->stats().spins, 0);
  EXPECT_EQ(BusyPoll::Spinners(), 0);
  // A wait refused a slot is not a lost spin: it spins as soon as a slot is free.
  EXPECT_EQ(polls[max]->Spin(SecondCallHits()), 1);
  EXPECT_EQ(polls[max]->stats().spins, 1);
}

TEST(BusyPoll, ACheckThatThrowsGivesItsSlotBack) {
  SKIP_ON_ONE_CPU();
  BusyPoll poll(microseconds(20'000));
  int calls = 0;
  EXPECT_THROW(poll.Spin([&]() -> int {
    if (++calls == 2) throw std::runtime_error("boom");
    return 0;
  }),
               std::runtime_error);
  EXPECT_EQ(BusyPoll::Spinners(), 0);
  EXPECT_EQ(poll.stats().spins, 1);
}

TEST(BusyPoll, CpusOfACgroupQuota) {
  using internal::CpusOfCgroupQuota;
  EXPECT_EQ(CpusOfCgroupQuota("max 100000"), std::nullopt);
  EXPECT_EQ(CpusOfCgroupQuota("max 100000\n"), std::nullopt);
  EXPECT_EQ(CpusOfCgroupQuota("100000 100000"), 1);
  EXPECT_EQ(CpusOfCgroupQuota("150000 100000\n"), 2);  // 1.5 CPUs: 2 run at times
  EXPECT_EQ(CpusOfCgroupQuota("50000 100000"), 1);
  EXPECT_EQ(CpusOfCgroupQuota("400000 100000"), 4);
  for (const char* bad : {"", "100000", "x 100000", "100000 0", "-1 100000", "1 2 3"}) {
    EXPECT_EQ(CpusOfCgroupQuota(bad), std::nullopt) << bad;
  }
}

std::atomic<bool> spinning{false};
std::atomic<bool> release{false};

TEST(BusyPoll, AForkedChildStartsWithNoSpinners) {
  SKIP_ON_ONE_CPU();
  if (kAllocatorIsForkUnsafe || kThreadSanitizer) {
    // Forks while another thread runs (testing.h): only where that is safe.
    GTEST_SKIP() << "forking beside a running thread can hang a sanitizer's child";
  }
  // A thread of the parent spins at the moment of fork(): in the child it does not
  // exist, and its slot must not count.
  std::thread spinner([] {
    BusyPoll poll(microseconds(30'000'000));
    int calls = 0;
    poll.Spin([&] {
      if (++calls > 1) spinning.store(true);  // past the first check: in the spin
      return release.load() ? 1 : 0;
    });
  });
  while (!spinning.load()) std::this_thread::yield();
  EXPECT_EQ(BusyPoll::Spinners(), 1);
  const int child = testing::RunInForkedChild([]() -> int {
    if (BusyPoll::Spinners() != 0) return 1;
    BusyPoll poll(microseconds(100'000));
    int calls = 0;
    const int got = poll.Spin([&] {
      if (++calls == 1) return 0;  // the first check: no slot taken yet
      return BusyPoll::Spinners() == 1 ? 5 : 6;
    });
    if (got != 5) return 2;
    return BusyPoll::Spinners() == 0 ? 0 : 3;
  });
  release.store(true);
  spinner.join();
  EXPECT_EQ(child, 0);
  EXPECT_EQ(BusyPoll::Spinners(), 0);
}

TEST(BusyPoll, OneCpuNeverSpins) {
  const int child = testing::RunInForkedChild([]() -> int {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    if (sched_setaffinity(0, sizeof(one), &one) != 0) return 1;
    if (BusyPoll::MaxSpinners() != 0) return 2;
    BusyPoll poll(microseconds(100'000));
    bool called = false;
    if (poll.Spin([&] { return called = true, 1; }) != 0 || called) return 3;
    return poll.stats().spins == 0 ? 0 : 4;
  });
  EXPECT_EQ(child, 0);
}

}  // namespace
}  // namespace riffledb
