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

}  // namespace unet::testing

#endif  // TESTS_TEST_DIRS_H_
