// Fuzz target: WrittenFragments::FromJson (fragment descriptions, untrusted text from
// the workers of a distributed write) on arbitrary bytes. Every rejection is Invalid and
// starts with its prefix; a description that parses serialises and parses back to the
// same description.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "riffledb/format/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using riffledb::format::WrittenFragments;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = WrittenFragments::FromJson(text);
  if (!parsed.ok()) {
    if (!parsed.status().IsInvalid() ||
        parsed.status().message().rfind("Invalid fragment description: ", 0) != 0) {
      std::abort();
    }
    return 0;
  }
  auto serialized = parsed->ToJson();
  if (!serialized.ok()) std::abort();
  auto again = WrittenFragments::FromJson(*serialized);
  if (!again.ok() || again->table != parsed->table ||
      again->base_version != parsed->base_version ||
      again->fragments != parsed->fragments ||
      !again->schema->Equals(*parsed->schema, /*check_metadata=*/true)) {
    std::abort();
  }
  return 0;
}
