#include "riffledb/util/busy_poll.h"

#include <sched.h>

#include <algorithm>
#include <atomic>

#include "riffledb/util/pid.h"

namespace riffledb {

namespace {

constexpr uint32_t kMaxBackoff = 64;

// The spinning threads of this process: ForkGeneration() in the high 48 bits, the count
// in the low 16. A count stored by an ancestor (a thread that spun while the process
// forked, and does not exist in the child) reads as 0.
std::atomic<uint64_t> spinners{0};

uint64_t CountIn(uint64_t word, uint64_t generation) {
  return (word >> 16) == generation ? (word & 0xffff) : 0;
}

bool TakeSpinnerSlot(int max_spinners) {
  const uint64_t generation = ForkGeneration();
  uint64_t word = spinners.load(std::memory_order_relaxed);
  while (true) {
    const uint64_t count = CountIn(word, generation);
    if (count >= static_cast<uint64_t>(max_spinners)) return false;
    if (spinners.compare_exchange_weak(word, (generation << 16) | (count + 1),
                                       std::memory_order_relaxed)) {
      return true;
    }
  }
}

void GiveSpinnerSlot() {
  const uint64_t generation = ForkGeneration();
  uint64_t word = spinners.load(std::memory_order_relaxed);
  while (true) {
    const uint64_t count = CountIn(word, generation);
    if (count == 0) return;  // cannot happen: the slot was taken in this process
    if (spinners.compare_exchange_weak(word, (generation << 16) | (count - 1),
                                       std::memory_order_relaxed)) {
      return;
    }
  }
}

}  // namespace

BusyPoll::BusyPoll(std::chrono::microseconds limit)
    : limit_(limit), max_spinners_(limit.count() > 0 ? MaxSpinners() : 0) {}

int BusyPoll::MaxSpinners() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0) return 0;
  return std::max(0, CPU_COUNT(&cpus) - 1);
}

bool BusyPoll::Yield() {
  sched_yield();
  return true;
}

int BusyPoll::Spinners() {
  return static_cast<int>(
      CountIn(spinners.load(std::memory_order_relaxed), ForkGeneration()));
}

bool BusyPoll::ShouldSpin() {
  if (max_spinners_ == 0) return false;
  if (skip_ > 0) {
    --skip_;
    return false;
  }
  return TakeSpinnerSlot(max_spinners_);
}

void BusyPoll::Done(bool hit) {
  GiveSpinnerSlot();
  ++stats_.spins;
  if (hit) {
    ++stats_.hits;
    backoff_ = 0;
  } else {
    skip_ = std::max<uint32_t>(backoff_, 1);
    backoff_ = std::min(skip_ * 2, kMaxBackoff);
  }
}

}  // namespace riffledb
