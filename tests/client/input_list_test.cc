#include "client/cli/input_list.h"

#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace unet::client {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::Field;

class InputListTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / "input_list" /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    fs::create_directories(root_);
  }

  fs::path Touch(const fs::path& relative) {
    const fs::path path = root_ / relative;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << "x";
    return path;
  }

  InputList List(const std::vector<std::string>& arguments,
                 const std::string& stdin_text = "",
                 InputListOptions options = {}) {
    std::istringstream stdin_stream(stdin_text);
    return ListInputs(arguments, stdin_stream, options);
  }

  fs::path root_;
};

std::vector<std::string> Stems(const InputList& list) {
  std::vector<std::string> stems;
  for (const auto& file : list.files) stems.push_back(file.output_stem);
  return stems;
}

TEST_F(InputListTest, ADirectoryIsWalkedRecursivelyInOrderAndMirrored) {
  Touch("b.png");
  Touch("a.TIF");
  Touch("notes.txt");
  Touch("sub/deeper/c.jpg");
  const InputList list = List({root_.string()});
  EXPECT_THAT(Stems(list), ElementsAre("a", "b", "sub/deeper/c"));
  EXPECT_EQ(list.files[2].path, root_ / "sub/deeper/c.jpg");
  EXPECT_TRUE(list.errors.empty());
}

TEST_F(InputListTest, GlobsFilterFilesFoundInDirectoriesOnly) {
  Touch("dir/keep_1.png");
  Touch("dir/drop.png");
  const fs::path named = Touch("named.png");
  InputListOptions options;
  options.globs = {"keep_*"};
  const InputList list =
      List({(root_ / "dir").string(), named.string()}, "", options);
  EXPECT_THAT(Stems(list), ElementsAre("keep_1", "named"));
}

TEST_F(InputListTest, ADashReadsOnePathPerLine) {
  const fs::path a = Touch("a.png");
  const fs::path b = Touch("x/b.png");
  const InputList list = List({"-"}, a.string() + "\n\n" + b.string() + "\r\n");
  EXPECT_THAT(Stems(list), ElementsAre("a", "b"));
}

TEST_F(InputListTest, MissingPathsAndCollidingOutputsAreErrorsNotStops) {
  const fs::path a = Touch("a.png");
  const fs::path other_a = Touch("other/a.tif");
  const fs::path c = Touch("c.png");
  const InputList list = List({(root_ / "missing.png").string(), a.string(),
                               other_a.string(), c.string()});
  EXPECT_THAT(Stems(list), ElementsAre("a", "c"));
  ASSERT_EQ(list.errors.size(), 2u);
  EXPECT_EQ(list.errors[0].status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(list.errors[1].path, other_a);
  EXPECT_EQ(list.errors[1].status.code(), absl::StatusCode::kAlreadyExists);
}

TEST_F(InputListTest, TheOutputDirectoryInsideTheInputIsNotWalked) {
  Touch("a.png");
  Touch("masks/a_mask.png");
  InputListOptions options;
  options.output_dir = root_ / "masks";
  EXPECT_THAT(Stems(List({root_.string()}, "", options)), ElementsAre("a"));
}

}  // namespace
}  // namespace unet::client
