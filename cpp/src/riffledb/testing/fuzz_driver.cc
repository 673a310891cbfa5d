// A libFuzzer-compatible driver for builds without libFuzzer (g++): runs every file of
// the seed corpus given on the command line, then a fixed number of deterministic
// mutations of them (byte flips, truncations, insertions, splices). The target must not
// crash, leak or trip a sanitizer on any input; ctest runs it as a smoke fuzz. Real
// fuzzing: configure with -DRIFFLEDB_BUILD_FUZZERS=ON and clang, which links libFuzzer
// instead.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<uint8_t> ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void Run(const std::vector<uint8_t>& input) {
  LLVMFuzzerTestOneInput(input.data(), input.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::vector<uint8_t>> corpus;
  int64_t iterations = 20000;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--iterations=", 0) == 0) {
      iterations = std::atoll(arg.c_str() + 13);
      continue;
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
  if (corpus.empty()) corpus.emplace_back();
  for (const auto& input : corpus) Run(input);

  std::mt19937_64 rng(42);
  for (int64_t it = 0; it < iterations; ++it) {
    std::vector<uint8_t> input = corpus[rng() % corpus.size()];
    int mutations = 1 + static_cast<int>(rng() % 4);
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
    Run(input);
  }
  std::printf("fuzz driver: %zu corpus inputs, %lld mutations, no crash\n", corpus.size(),
              static_cast<long long>(iterations));
  return 0;
}
