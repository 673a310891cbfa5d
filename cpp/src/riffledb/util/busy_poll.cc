#include "riffledb/util/busy_poll.h"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <fstream>
#include <string>

#include "riffledb/util/pid.h"

namespace riffledb {

namespace {

constexpr uint32_t kMaxBackoff = 64;
static_assert(CPU_SETSIZE < 0xffff, "the spinner count has 16 bits");

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

// The CPUs the cgroup's quota allows (v2's cpu.max, else v1's CFS quota), read once.
std::optional<int> CgroupCpus() {
  static const std::optional<int> cpus = []() -> std::optional<int> {
    auto read = [](const char* path) -> std::optional<std::string> {
      std::ifstream in(path);
      if (!in) return std::nullopt;
      std::string text;
      std::getline(in, text);
      return text;
    };
    if (auto v2 = read("/sys/fs/cgroup/cpu.max")) {
      return internal::CpusOfCgroupQuota(*v2);
    }
    auto quota = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us");
    auto period = read("/sys/fs/cgroup/cpu/cpu.cfs_period_us");
    if (!quota || !period || quota->rfind('-', 0) == 0) return std::nullopt;  // -1: none
    return internal::CpusOfCgroupQuota(*quota + " " + *period);
  }();
  return cpus;
}

}  // namespace

BusyPoll::BusyPoll(std::chrono::microseconds limit)
    : limit_(std::clamp(limit, std::chrono::microseconds(0), kMaxLimit)),
      max_spinners_(limit_.count() > 0 ? MaxSpinners() : 0) {}

int BusyPoll::MaxSpinners() {
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0) return 0;
  int usable = CPU_COUNT(&cpus);
  if (const auto quota = CgroupCpus()) usable = std::min(usable, *quota);
  return std::max(0, usable - 1);
}

namespace internal {

std::optional<int> CpusOfCgroupQuota(std::string_view cpu_max) {
  const size_t space = cpu_max.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  int64_t quota = 0, period = 0;
  auto parse = [](std::string_view text, int64_t* out) {
    const auto [end, error] =
        std::from_chars(text.data(), text.data() + text.size(), *out);
    return error == std::errc() && end == text.data() + text.size() && *out > 0;
  };
  std::string_view period_text = cpu_max.substr(space + 1);
  while (!period_text.empty() &&
         (period_text.back() == '\n' || period_text.back() == ' ')) {
    period_text.remove_suffix(1);
  }
  if (!parse(cpu_max.substr(0, space), &quota) || !parse(period_text, &period)) {
    return std::nullopt;  // "max": no quota
  }
  return static_cast<int>(std::min<int64_t>((quota + period - 1) / period, 1 << 20));
}

}  // namespace internal

void BusyPoll::Yield() { sched_yield(); }

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
