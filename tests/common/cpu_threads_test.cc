#include "common/cpu_threads.h"

#include <sched.h>

#include "gtest/gtest.h"

namespace unet {
namespace {

TEST(CpuThreadsTest, SplitsTheCpusAmongCpuWorkers) {
  EXPECT_EQ(DefaultCpuThreads(8, 1), 8);
  EXPECT_EQ(DefaultCpuThreads(8, 2), 4);
  EXPECT_EQ(DefaultCpuThreads(8, 3), 2);
  EXPECT_EQ(DefaultCpuThreads(2, 4), 1);  // never zero
  EXPECT_EQ(DefaultCpuThreads(4, 0), 4);  // GPU-only: pre/postprocessing
}

TEST(CpuThreadsTest, CountsTheAffinityMask) {
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  EXPECT_EQ(UsableCpus(), CPU_COUNT(&set));
}

}  // namespace
}  // namespace unet
