#include "common/cpu_threads.h"

#include <sched.h>

#include <algorithm>
#include <thread>

namespace unet {

int UsableCpus() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    return std::max(1, CPU_COUNT(&set));
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

int DefaultCpuThreads(int usable_cpus, int cpu_workers) {
  return std::max(1, usable_cpus / std::max(1, cpu_workers));
}

}  // namespace unet
