// File helpers for tests, on the local storage seam.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "riffledb/io/filesystem.h"
#include "riffledb/testing/testing.h"

namespace riffledb::testing {

/// The bytes of `s`, as the storage seam writes them (valid while `s` is).
inline std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

/// Names in `dir`, sorted; empty if it does not exist. Fails the test on an error.
inline std::vector<std::string> ListNames(const std::string& dir) {
  auto entries = io::Local()->List(dir);
  EXPECT_TRUE(entries.ok()) << entries.status().ToString();
  std::vector<std::string> names;
  if (entries.ok()) {
    for (const auto& entry : *entries) names.push_back(entry.name);
  }
  return names;
}

/// Writes `path` with `data`, replacing it (no atomicity: tests only).
inline arrow::Status WriteFile(const std::string& path, std::string_view data) {
  ARROW_RETURN_NOT_OK(io::Local()->DeleteFile(path));
  ARROW_ASSIGN_OR_RAISE(auto out, io::Local()->CreateOutput(path));
  ARROW_RETURN_NOT_OK(out->Write(data.data(), static_cast<int64_t>(data.size())));
  return out->Close();
}

/// How many file descriptors this process holds open now.
inline int OpenFileDescriptors() {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)entry;
    ++n;
  }
  return n;
}

}  // namespace riffledb::testing
