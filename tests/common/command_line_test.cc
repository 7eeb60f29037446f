#include "common/command_line.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace unet {
namespace {

bool Given(std::vector<std::string> args, absl::string_view name) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  return FlagGivenOnCommandLine(static_cast<int>(argv.size()), argv.data(),
                                name);
}

TEST(FlagGivenOnCommandLineTest, SeesEveryWayOfSettingABoolFlag) {
  EXPECT_TRUE(Given({"bin", "--channels_last"}, "channels_last"));
  EXPECT_TRUE(
      Given({"bin", "--port=1", "--channels_last=false"}, "channels_last"));
  EXPECT_TRUE(Given({"bin", "--nochannels_last"}, "channels_last"));
  EXPECT_TRUE(Given({"bin", "-channels_last=true"}, "channels_last"));
}

TEST(FlagGivenOnCommandLineTest, IgnoresOtherFlagsValuesAndPositionals) {
  EXPECT_FALSE(Given({"bin"}, "channels_last"));
  EXPECT_FALSE(Given({"bin", "--channels_last_x"}, "channels_last"));
  EXPECT_FALSE(Given({"bin", "channels_last"}, "channels_last"));
  EXPECT_FALSE(Given({"bin", "--", "--channels_last"}, "channels_last"));
  // The program's own name is not a flag.
  EXPECT_FALSE(Given({"--channels_last"}, "channels_last"));
}

}  // namespace
}  // namespace unet
