// Fuzz target: the Arrow IPC file footer parser of fragments read from object storage
// (lazy_fragment.h). A bucket's files are untrusted: no footer may crash the parser or
// make it read past its input, and every block it returns must lie between the file's
// head and the footer, in order.
#include <cstdint>
#include <cstdlib>
#include <span>

#include "riffledb/format/lazy_fragment.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr int64_t kFooterOffset = 1 << 20;
  auto blocks = riffledb::format::ParseIpcFooter({data, size}, kFooterOffset);
  if (!blocks.ok()) {
    if (!blocks.status().IsInvalid() && !blocks.status().IsNotImplemented()) std::abort();
    return 0;
  }
  int64_t end = 8;
  for (const auto& block : *blocks) {
    if (block.offset < end || block.metadata_length < 8 || block.body_length < 0) {
      std::abort();
    }
    end = block.offset + block.metadata_length + block.body_length;
    if (end > kFooterOffset) std::abort();
  }
  return 0;
}
