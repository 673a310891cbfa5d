// A libFuzzer-compatible driver for builds without libFuzzer (g++): runs every file of
// the seed corpus given on the command line, then mutations of them (byte flips,
// truncations, insertions, splices). The target must not crash, leak or trip a
// sanitizer on any input. Real fuzzing: configure with -DRIFFLEDB_BUILD_FUZZERS=ON and
// clang, which links libFuzzer instead.
//
//   request_fuzz CORPUS...                  20000 mutations, seed 42: what ctest runs
//   request_fuzz CORPUS... --seconds=600    mutates until the time is up (`make soak`),
//                                           from a random seed unless --seed=S is given
//   --iterations=N --seed=S                 exactly that run again
//   --crash-dir=DIR                         where a crashing input is written (default .)
//
// The seed is printed first. An input that crashes the target (a signal, abort, a
// sanitizer report) is written to DIR/crash-<target>-<seed>-<input number>, and the
// file's name printed, before the process dies; running the target on that file alone
// reproduces the crash. With RIFFLEDB_SOAK_REPORT set, the run appends its counts there
// as a JSON line (scripts/soak.py): inputs run, and a crash if there was one.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

// Set by the sanitizer runtimes when linked in (the dev preset): called before a
// sanitizer ends the process after its report.
extern "C" void __sanitizer_set_death_callback(void (*callback)(void))
    __attribute__((weak));

namespace {

std::vector<uint8_t> ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// What the crash handler writes for one input.
struct InputRecord {
  const uint8_t* data = nullptr;
  size_t size = 0;
  char path[4096] = {};  // where the input is written if it crashes
  char report_line[8192] = {};
};

// What the crash handler needs. The handler only reads it, and only calls
// async-signal-safe functions. Each input's record (and a mutated input's bytes, see
// main) is filled in the slot the handler does not read, then published by switching
// `active`, so that a signal at any moment sees one input's data, path and report line
// together, never a mix of two inputs. (A handler running on another thread than the
// driver's, for a fault in a target's own thread, could still see the driver publish
// twice more meanwhile; the driver waits in the target then.)
struct Current {
  InputRecord records[2];
  std::atomic<int> active{0};
  static_assert(std::atomic<int>::is_always_lock_free);
  char report[4096] = {};  // RIFFLEDB_SOAK_REPORT, or empty
  volatile sig_atomic_t dumped = 0;
} g_current;

void WriteString(int fd, const char* text) {
  const size_t n = std::strlen(text);
  if (::write(fd, text, n) < 0) return;
}

void DumpCurrentInput() {
  if (g_current.dumped) return;
  g_current.dumped = 1;
  const InputRecord& record =
      g_current.records[g_current.active.load(std::memory_order_acquire)];
  if (record.path[0] == 0) return;  // before the first input
  const int fd = ::open(record.path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd >= 0) {
    size_t written = 0;
    while (written < record.size) {
      const ssize_t n = ::write(fd, record.data + written, record.size - written);
      if (n <= 0) break;
      written += static_cast<size_t>(n);
    }
    ::close(fd);
  }
  WriteString(2, "\nfuzz driver: CRASH; the input is in ");
  WriteString(2, record.path);
  WriteString(2, "\n");
  if (g_current.report[0] != 0) {
    const int report = ::open(g_current.report, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (report >= 0) {
      WriteString(report, record.report_line);
      ::close(report);
    }
  }
}

void OnFatalSignal(int signal) {
  DumpCurrentInput();
  ::signal(signal, SIG_DFL);
  ::raise(signal);
}

void InstallCrashHandlers() {
  for (int signal : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) {
    ::signal(signal, OnFatalSignal);
  }
  if (__sanitizer_set_death_callback != nullptr) {
    __sanitizer_set_death_callback(DumpCurrentInput);
  }
}

// The slot the next input's record goes to (the one the crash handler does not read).
int IdleSlot() { return 1 - g_current.active.load(std::memory_order_relaxed); }

// Makes `input` (number `number`) what the crash handler writes: its record is filled
// in the idle slot, then published.
void SetCurrent(const std::vector<uint8_t>& input, const std::string& prefix,
                int64_t number, const std::string& target, int64_t mutations) {
  const int next = IdleSlot();
  InputRecord& record = g_current.records[next];
  record.data = input.data();
  record.size = input.size();
  std::snprintf(record.path, sizeof(record.path), "%s%lld", prefix.c_str(),
                static_cast<long long>(number));
  if (g_current.report[0] != 0) {
    std::snprintf(record.report_line, sizeof(record.report_line),
                  "{\"loop\": \"fuzz %s\", \"rounds\": %lld, \"fuzz_inputs\": %lld, "
                  "\"crash\": 1, \"input\": \"%s\"}\n",
                  target.c_str(), static_cast<long long>(mutations),
                  static_cast<long long>(number), record.path);
  }
  g_current.active.store(next, std::memory_order_release);
}

void Mutate(std::vector<uint8_t>& input, const std::vector<std::vector<uint8_t>>& corpus,
            std::mt19937_64& rng) {
  const int mutations = 1 + static_cast<int>(rng() % 4);
  for (int m = 0; m < mutations; ++m) {
    switch (rng() % 5) {
      case 0:  // flip a byte
        if (!input.empty())
          input[rng() % input.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
        break;
      case 1:  // truncate
        if (!input.empty()) input.resize(rng() % input.size());
        break;
      case 2:  // insert a random byte
        input.insert(input.begin() + (input.empty() ? 0 : rng() % (input.size() + 1)),
                     static_cast<uint8_t>(rng()));
        break;
      case 3: {  // splice with another input
        const auto& other = corpus[rng() % corpus.size()];
        if (!other.empty()) {
          size_t from = rng() % other.size();
          size_t at = input.empty() ? 0 : rng() % input.size();
          input.insert(input.begin() + at, other.begin() + from, other.end());
        }
        break;
      }
      default:  // set a byte to an interesting value
        if (!input.empty()) {
          static const uint8_t kValues[] = {0,   1,    0x7f, 0x80, 0xff,
                                            '"', '\'', '(',  ')',  '\\'};
          input[rng() % input.size()] = kValues[rng() % sizeof(kValues)];
        }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::vector<uint8_t>> corpus;
  int64_t iterations = 20000;
  double seconds = 0;  // > 0: mutate until the time is up instead of `iterations`
  bool seeded = false;
  uint64_t seed = 42;
  std::string crash_dir = ".";
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--iterations=", 0) == 0) {
      iterations = std::atoll(arg.c_str() + 13);
      continue;
    }
    if (arg.rfind("--seconds=", 0) == 0) {
      seconds = std::atof(arg.c_str() + 10);
      continue;
    }
    if (arg.rfind("--seed=", 0) == 0) {
      seed = std::strtoull(arg.c_str() + 7, nullptr, 10);
      seeded = true;
      continue;
    }
    if (arg.rfind("--crash-dir=", 0) == 0) {
      crash_dir = arg.substr(12);
      continue;
    }
    if (arg.rfind("--", 0) == 0) {
      std::fprintf(stderr, "fuzz driver: unknown option %s\n", arg.c_str());
      return 2;
    }
    std::filesystem::path path(arg);
    if (std::filesystem::is_directory(path)) {
      for (const auto& entry : std::filesystem::directory_iterator(path)) {
        if (entry.is_regular_file()) corpus.push_back(ReadAll(entry.path()));
      }
    } else {
      corpus.push_back(ReadAll(path));
    }
  }
  if (seconds > 0 && !seeded)
    seed = std::random_device()() ^ (uint64_t{std::random_device()()} << 32);
  const std::string target = std::filesystem::path(argv[0]).filename().string();
  std::printf("fuzz driver: %s, seed %llu\n", target.c_str(),
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);

  std::filesystem::create_directories(crash_dir);
  const std::string prefix =
      crash_dir + "/crash-" + target + "-" + std::to_string(seed) + "-";
  if (const char* report = std::getenv("RIFFLEDB_SOAK_REPORT"); report != nullptr) {
    std::snprintf(g_current.report, sizeof(g_current.report), "%s", report);
  }
  InstallCrashHandlers();

  if (corpus.empty()) corpus.emplace_back();
  int64_t number = 0;     // inputs run
  int64_t mutations = 0;  // of them, mutated ones
  // Runs one input, with what the crash handler writes if it crashes set first.
  auto run = [&](const std::vector<uint8_t>& input) {
    SetCurrent(input, prefix, number, target, mutations);
    LLVMFuzzerTestOneInput(input.data(), input.size());
    ++number;
  };
  for (const auto& input : corpus) run(input);

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(seconds));
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> mutated[2];  // by slot of g_current.records
  for (;; ++mutations) {
    if (seconds > 0) {
      // A clock read per 64 inputs: some targets run an input in microseconds.
      if (mutations % 64 == 0 && Clock::now() >= deadline) break;
    } else if (mutations >= iterations) {
      break;
    }
    // Built in the idle slot's buffer: the published input's bytes stay intact until
    // this one is published in its place.
    std::vector<uint8_t>& input = mutated[IdleSlot()];
    input = corpus[rng() % corpus.size()];
    Mutate(input, corpus, rng);
    run(input);
  }
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "fuzz driver: %s, seed %llu: %zu corpus inputs, %lld mutations in %.1f s, no "
      "crash\n",
      target.c_str(), static_cast<unsigned long long>(seed), corpus.size(),
      static_cast<long long>(mutations), elapsed);
  if (g_current.report[0] != 0) {
    std::ofstream(g_current.report, std::ios::app)
        << "{\"loop\": \"fuzz " << target << "\", \"rounds\": " << mutations
        << ", \"fuzz_inputs\": " << number << ", \"seed\": \"" << seed << "\"}\n";
  }
  return 0;
}
