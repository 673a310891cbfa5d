// Bounded busy-polling before a blocking wait, for the short waits of a request and its
// answer on a fast link.
//
// A thread that blocks in recv() or poll() for an answer 100 µs away pays for the wait
// twice: the kernel's wake-up (40-56 µs a round trip on a virtual machine whose idle
// CPUs halt, against 6 µs when both ends poll), and cold caches afterwards — the code
// after each wake-up ran 3-5x slower than the same code run hot (docs/remote.md,
// "Performance"). Polling for a bounded time first keeps the thread on its CPU, hot.
//
// It is a bet, and a BusyPoll keeps it cheap when it loses. A spin that ends without the
// event blocks the next 1, 2, 4 ... 64 waits without spinning (then spins again once, to
// probe); one that catches the event spins again next time. So a peer that answers in
// milliseconds (a remote server across a network, an idle keep-alive client) costs one
// lost spin per 64 waits. And the process spins on at most (usable CPUs - 1) threads at
// once, none with a single CPU, and yields its CPU between two checks: a spinning thread
// must never hold the CPU its peer needs to answer it. The usable CPUs are those of the
// affinity mask and of the cgroup's CPU quota (a container's `--cpus`). The bound is per
// process: several processes on one machine (DataLoader workers) each have theirs, which
// is why the remote client does not poll by default in a worker (docs/remote.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace riffledb {

/// One waiter's busy-polling, with its backoff: one per connection, used by one thread
/// at a time. Not thread-safe; the spinner slots it takes are process-wide.
class BusyPoll {
 public:
  /// The longest spin: a longer wait is better slept.
  static constexpr std::chrono::microseconds kMaxLimit{1'000'000};

  /// Spins at most `limit` (clamped to [0, kMaxLimit]) before each wait; zero (the
  /// default) never spins. Reads the usable CPUs (MaxSpinners): with one, it never
  /// spins.
  explicit BusyPoll(std::chrono::microseconds limit = std::chrono::microseconds(0));

  /// Calls `ready()` — a check that does not block, returning nonzero when the event
  /// came (or failed) — once, and if the event is not there yet, again until it returns
  /// nonzero or the limit passes. Returns its last result: 0 when it did not spin, or
  /// spun in vain (the caller then blocks). An event there at the first check is not a
  /// spin: it counts for nothing, and leaves the backoff as it was.
  template <typename Ready>
  int Spin(Ready&& ready) {
    if (max_spinners_ == 0) return 0;  // never spins: the caller blocks at once
    int result = ready();
    if (result != 0 || !ShouldSpin()) return result;
    SpinnerSlot slot(this);
    const auto until = Clock::now() + limit_;
    do {  // checked again at least once, however long the yield took
      Yield();
      result = ready();
    } while (result == 0 && Clock::now() < until);
    slot.hit = result != 0;
    return result;
  }

  /// What this waiter's spins came to (for tests and diagnostics).
  struct Stats {
    int64_t spins = 0;  ///< waits that began with a spin
    int64_t hits = 0;   ///< spins that caught the event
  };
  const Stats& stats() const { return stats_; }

  /// The most threads of this process that spin at once: the CPUs the calling thread
  /// may run on (its affinity, read now; the cgroup's CPU quota, read once) minus one.
  static int MaxSpinners();

  /// Threads of this process spinning now (a forked child starts with none).
  static int Spinners();

 private:
  using Clock = std::chrono::steady_clock;

  // sched_yield(): between two checks, a thread waiting for this CPU (the peer, when
  // the machine is busy) runs at once.
  static void Yield();

  // Whether this wait spins; when true, a spinner slot is taken (Done gives it back).
  bool ShouldSpin();
  void Done(bool hit);

  // Gives the slot back however the spin ends (a check that throws included).
  struct SpinnerSlot {
    explicit SpinnerSlot(BusyPoll* poll) : poll(poll) {}
    ~SpinnerSlot() { poll->Done(hit); }
    SpinnerSlot(const SpinnerSlot&) = delete;
    SpinnerSlot& operator=(const SpinnerSlot&) = delete;
    BusyPoll* poll;
    bool hit = false;
  };

  std::chrono::microseconds limit_;
  int max_spinners_;
  uint32_t skip_ = 0;     // waits left to block without spinning
  uint32_t backoff_ = 0;  // how many the next lost spin skips (0: 1)
  Stats stats_;
};

namespace internal {

/// The CPUs a cgroup CPU quota allows, rounded up, from the text of a cgroup v2
/// `cpu.max` file ("max 100000", "150000 100000"); nullopt for no quota or text it does
/// not understand.
std::optional<int> CpusOfCgroupQuota(std::string_view cpu_max);

}  // namespace internal

}  // namespace riffledb
