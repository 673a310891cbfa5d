// Fuzz target: ParseManifest on arbitrary bytes. A manifest that parses must serialize
// and parse back to the same manifest.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "riffledb/format/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using riffledb::format::ParseManifest;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto manifest = ParseManifest(text, "fuzz.json");
  if (!manifest.ok()) {
    // Every rejection names its source.
    if (manifest.status().message().rfind("fuzz.json: ", 0) != 0) std::abort();
    return 0;
  }
  auto serialized = riffledb::format::SerializeManifest(*manifest);
  if (!serialized.ok()) std::abort();
  auto again = ParseManifest(*serialized, "round trip");
  if (!again.ok() || again->version != manifest->version ||
      again->fragments.size() != manifest->fragments.size() ||
      again->num_rows() != manifest->num_rows() ||
      !again->schema->Equals(*manifest->schema, /*check_metadata=*/true)) {
    std::abort();
  }
  return 0;
}
