#ifndef TESTS_TEST_DIRS_H_
#define TESTS_TEST_DIRS_H_

#include <filesystem>

#include "gtest/gtest.h"

namespace unet::testing {

// Returns an empty directory under TempDir() named after the running test.
inline std::filesystem::path FreshTestDir() {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      ::testing::UnitTest::GetInstance()->current_test_info()->name();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Writes a trainer's data directory into `dir` (replacing what was there):
// two labelled pairs, image/N.png and label/N.png, both the repository's
// ISBI training slice 0: one to train on, one to validate with.
inline std::filesystem::path TinyIsbiDataset(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  fs::remove_all(dir);
  for (const char* sub : {"image", "label"}) fs::create_directories(dir / sub);
  for (const char* n : {"0.png", "1.png"}) {
    fs::copy_file(UNET_TEST_DATA_DIR "/isbi_train_0.png", dir / "image" / n);
    fs::copy_file(UNET_TEST_DATA_DIR "/isbi_train_0_label.png",
                  dir / "label" / n);
  }
  return dir;
}

}  // namespace unet::testing

#endif  // TESTS_TEST_DIRS_H_
