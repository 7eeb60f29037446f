#include "common/log.h"

#include "gtest/gtest.h"

namespace unet {
namespace {

TEST(LogValueTest, PlainTokensStayBare) {
  EXPECT_EQ(LogValue("unet"), "unet");
  EXPECT_EQ(LogValue("a-b_c.1:2/3"), "a-b_c.1:2/3");
}

TEST(LogValueTest, EmptyAndSpacedValuesAreQuoted) {
  EXPECT_EQ(LogValue(""), "\"\"");
  EXPECT_EQ(LogValue("two words"), "\"two words\"");
  EXPECT_EQ(LogValue("k=v"), "\"k=v\"");
}

TEST(LogValueTest, EscapesWhatCouldBreakALine) {
  EXPECT_EQ(LogValue("a\nb"), "\"a\\nb\"");
  EXPECT_EQ(LogValue("a\rb\tc"), "\"a\\rb\\tc\"");
  EXPECT_EQ(LogValue("say \"hi\""), "\"say \\\"hi\\\"\"");
  EXPECT_EQ(LogValue("back\\slash"), "\"back\\\\slash\"");
  EXPECT_EQ(LogValue(std::string("nul\0esc\x1b", 8)), "\"nul\\x00esc\\x1b\"");
  // Bytes beyond ASCII may be line breaks to some readers (NEL, U+2028).
  EXPECT_EQ(LogValue("\x85\xe2\x80\xa8"), "\"\\x85\\xe2\\x80\\xa8\"");
}

TEST(LogValueTest, LongValuesAreCutAndMarked) {
  const std::string value = LogValue(std::string(10000, 'x'));
  EXPECT_EQ(value, "\"" + std::string(kMaxLogValueBytes, 'x') + "...\"");
}

TEST(LogValueTest, AnEscapedValueHasNoLineBreakOrControlByte) {
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte += static_cast<char>(b);
  for (char c : LogValue(every_byte)) {
    EXPECT_TRUE(c >= 0x20 && c < 0x7F) << static_cast<int>(c);
  }
}

}  // namespace
}  // namespace unet
