#include "common/machine_memory.h"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

namespace unet {

int64_t UsableMemoryBytes() {
  int64_t usable = int64_t{sysconf(_SC_PHYS_PAGES)} * sysconf(_SC_PAGE_SIZE);
  std::ifstream cgroup_limit("/sys/fs/cgroup/memory.max");
  std::string limit;
  if (cgroup_limit >> limit && limit != "max") {
    try {
      usable = std::min<int64_t>(usable, std::stoll(limit));
    } catch (const std::exception&) {
      // Unreadable: the machine's memory stands.
    }
  }
  return usable;
}

void TuneAllocatorForServing() {
  // glibc's largest mmap threshold; fixing it also stops the sliding
  // threshold from moving large buffers into the heap.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  // Freed heap memory is kept for the next pass up to this much per arena
  // (one arena per busy thread), instead of being trimmed and faulted in
  // again.
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace unet
