#include "riffledb/util/crc32c.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace riffledb {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 (iSCSI) appendix B.4 and the standard check value of "123456789".
  EXPECT_EQ(Crc32c(std::string_view("123456789")), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(std::string_view()), 0u);
}

TEST(Crc32c, ExtendsAcrossSplitsAtEveryPosition) {
  std::string data;
  for (int i = 0; i < 200; ++i) data.push_back(static_cast<char>(i * 37 + 11));
  const uint32_t whole = Crc32c(data);
  for (size_t cut = 0; cut <= data.size(); ++cut) {
    std::string_view view(data);
    EXPECT_EQ(Crc32c(view.substr(cut), Crc32c(view.substr(0, cut))), whole) << cut;
  }
}

TEST(Crc32c, EverySingleBitFlipChangesIt) {
  std::string data(4096, 'x');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 131);
  const uint32_t clean = Crc32c(data);
  for (size_t bit = 0; bit < data.size() * 8; ++bit) {
    data[bit / 8] ^= static_cast<char>(1 << (bit % 8));
    ASSERT_NE(Crc32c(data), clean) << "bit " << bit;
    data[bit / 8] ^= static_cast<char>(1 << (bit % 8));
  }
}

TEST(Crc32c, HexRoundTripsAndRejectsAnythingElse) {
  EXPECT_EQ(Crc32cHex(0xE3069283u), "e3069283");
  EXPECT_EQ(Crc32cHex(0x0000000Au), "0000000a");
  EXPECT_EQ(ParseCrc32cHex("e3069283"), 0xE3069283u);
  EXPECT_EQ(ParseCrc32cHex("0000000a"), 0x0Au);
  for (const char* bad :
       {"", "e306928", "e30692830", "E3069283", "e306928g", " 3069283"}) {
    EXPECT_EQ(ParseCrc32cHex(bad), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace riffledb
