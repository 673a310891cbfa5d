// Soak mode for the fault-injection loops (`make soak`, scripts/soak.py).
//
// A loop runs its usual sweep once. With RIFFLEDB_SOAK_SECONDS set, it repeats the sweep
// until that many seconds have passed, and when RIFFLEDB_SOAK_REPORT names a file, it
// appends its counts there as one JSON line ({"loop": ..., "counter": n, ...}) when it
// ends, also when an assertion failed half-way. The tests' own assertions stay what
// decides their outcome; the counts are what the soak prints.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace riffledb::testing {

class SoakLoop {
 public:
  explicit SoakLoop(std::string name) : name_(std::move(name)) {
    const char* seconds = std::getenv("RIFFLEDB_SOAK_SECONDS");
    if (seconds != nullptr && *seconds != 0) {
      soaking_ = true;
      deadline_ = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(std::atof(seconds)));
    }
  }
  SoakLoop(const SoakLoop&) = delete;
  SoakLoop& operator=(const SoakLoop&) = delete;

  ~SoakLoop() {
    const char* report = std::getenv("RIFFLEDB_SOAK_REPORT");
    if (report == nullptr || *report == 0) return;
    std::string line =
        "{\"loop\": \"" + name_ + "\", \"rounds\": " + std::to_string(rounds_);
    for (const auto& [counter, n] : counts_) {
      line += ", \"" + counter + "\": " + std::to_string(n);
    }
    std::ofstream(report, std::ios::app) << line << "}\n";
  }

  /// Whether to run another round: the first always, later ones only while soaking and
  /// before the deadline.
  bool Next() {
    if (rounds_ > 0 && (!soaking_ || std::chrono::steady_clock::now() >= deadline_)) {
      return false;
    }
    ++rounds_;
    return true;
  }

  /// Adds `n` to `counter` (names are plain identifiers: they go into JSON unescaped).
  void Add(const std::string& counter, int64_t n = 1) {
    for (auto& [name, value] : counts_) {
      if (name == counter) {
        value += n;
        return;
      }
    }
    counts_.emplace_back(counter, n);
  }

 private:
  const std::string name_;
  bool soaking_ = false;
  std::chrono::steady_clock::time_point deadline_;
  int64_t rounds_ = 0;
  std::vector<std::pair<std::string, int64_t>> counts_;
};

}  // namespace riffledb::testing
