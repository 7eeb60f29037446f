#include "model/model_repository.h"

#include <fstream>

#include "gtest/gtest.h"
#include "tests/test_dirs.h"

namespace unet {
namespace {

namespace fs = std::filesystem;

class ModelRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing::FreshTestDir(); }

  // Makes MODEL_ROOT/<relative>, with a model.json when `complete`.
  void MakeVersion(const std::string& relative, bool complete = true) {
    fs::create_directories(root_ / relative);
    std::ofstream(root_ / relative / kWeightsFile) << "weights";
    if (complete) std::ofstream(root_ / relative / kConfigFile) << "{}";
  }

  fs::path root_;
};

TEST_F(ModelRepositoryTest, ListsCompleteVersionsInOrder) {
  MakeVersion("unet/2");
  MakeVersion("unet/10");
  MakeVersion("unet/1");
  MakeVersion("other/3");
  const auto versions = ScanModelRoot(root_);
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), 4u);
  EXPECT_EQ((*versions)[0].name, "other");
  EXPECT_EQ((*versions)[1].version, 1);
  EXPECT_EQ((*versions)[2].version, 2);
  EXPECT_EQ((*versions)[3].version, 10);
  EXPECT_EQ((*versions)[3].dir, root_ / "unet/10");
}

TEST_F(ModelRepositoryTest, SkipsWhatIsNotAVersion) {
  MakeVersion("unet/1");
  MakeVersion("unet/2", /*complete=*/false);  // being written
  MakeVersion("unet/.staging-3-123");
  MakeVersion("unet/latest");
  MakeVersion("unet/007");
  MakeVersion("unet/0");
  MakeVersion(".hidden/1");
  std::ofstream(root_ / "README") << "not a model";
  const auto versions = ScanModelRoot(root_);
  ASSERT_TRUE(versions.ok()) << versions.status();
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_EQ((*versions)[0].version, 1);
}

TEST_F(ModelRepositoryTest, EmptyRootHasNoVersions) {
  const auto versions = ScanModelRoot(root_);
  ASSERT_TRUE(versions.ok());
  EXPECT_TRUE(versions->empty());
}

TEST_F(ModelRepositoryTest, MissingRootIsUnavailableNotEmpty) {
  EXPECT_EQ(ScanModelRoot(root_ / "absent").status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(ParseVersionTest, AcceptsPositiveIntegersOnly) {
  EXPECT_EQ(ParseVersion("1"), 1);
  EXPECT_EQ(ParseVersion("42"), 42);
  EXPECT_EQ(ParseVersion("0"), 0);
  EXPECT_EQ(ParseVersion("01"), 0);
  EXPECT_EQ(ParseVersion("-1"), 0);
  EXPECT_EQ(ParseVersion("1a"), 0);
  EXPECT_EQ(ParseVersion(""), 0);
  EXPECT_EQ(ParseVersion("99999999999999999999"), 0);
}

}  // namespace
}  // namespace unet
