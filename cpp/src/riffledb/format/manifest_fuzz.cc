// Fuzz target: ParseManifest and the segment parsers on arbitrary bytes. A manifest that
// parses must serialize and parse back to the same manifest.
//
// A format-2 manifest starts with the checksum of the rest, which random mutations almost
// never keep right; the input is therefore also parsed as the body of a manifest whose
// checksum header is made to match, so that mutations reach the parser behind it.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "riffledb/format/manifest.h"
#include "riffledb/util/crc32c.h"

namespace {

void Check(std::string_view text) {
  using riffledb::format::ParseManifest;
  auto manifest = ParseManifest(text, "fuzz.json");
  if (!manifest.ok()) {
    // Every rejection names its source.
    if (manifest.status().message().rfind("fuzz.json: ", 0) != 0) std::abort();
    return;
  }
  // Segments are read by the table directory; without them there is nothing to write.
  if (!manifest->fragment_segments.empty() || !manifest->history_segments.empty()) return;
  auto serialized = riffledb::format::SerializeManifest(*manifest);
  if (!serialized.ok()) std::abort();
  auto again = ParseManifest(*serialized, "round trip");
  if (!again.ok() || again->version != manifest->version ||
      again->fragments != manifest->fragments || again->history != manifest->history ||
      again->num_rows() != manifest->num_rows() ||
      !again->schema->Equals(*manifest->schema, /*check_metadata=*/true)) {
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  Check(text);
  Check("{\n  \"crc32c\": \"" + riffledb::Crc32cHex(riffledb::Crc32c(text)) + "\",\n" +
        std::string(text));
  for (auto parsed :
       {riffledb::format::ParseFragmentSegment(text, "fuzz.json").status(),
        riffledb::format::ParseHistorySegment(text, "fuzz.json").status()}) {
    if (!parsed.ok() && parsed.message().rfind("fuzz.json: ", 0) != 0) std::abort();
  }
  return 0;
}
