// CRC-32C (Castagnoli), the checksum of every committed file (docs/format.md, format 2).
//
// Chosen for what it catches and what it costs: every 1-, 2- and 3-bit error and every
// burst up to 32 bits in files of any size we write, and on x86-64 the SSE4.2 `crc32`
// instruction computes it at several GB/s (a portable table-driven version otherwise).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace riffledb {

/// Extends `crc` (the CRC-32C of the bytes before, 0 for none) over `size` bytes.
/// Crc32c(b, Crc32c(a)) == Crc32c(a + b).
uint32_t Crc32c(const void* data, size_t size, uint32_t crc = 0);

inline uint32_t Crc32c(std::string_view bytes, uint32_t crc = 0) {
  return Crc32c(bytes.data(), bytes.size(), crc);
}

/// Eight lower-case hex digits, most significant first ("e3069283").
std::string Crc32cHex(uint32_t crc);
/// The inverse of Crc32cHex; nullopt unless `text` is exactly 8 hex digits.
std::optional<uint32_t> ParseCrc32cHex(std::string_view text);

}  // namespace riffledb
