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

void TuneAllocator() {
  // glibc's largest mmap threshold; fixing it also stops the sliding
  // threshold from moving large buffers into the heap.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  // Freed heap memory is kept for the next pass up to this much, instead of
  // being trimmed and faulted in again.
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  // One arena for every thread. A thread's own arena is made of 64 MiB
  // heaps, and glibc unmaps a heap as soon as it is all free, whatever the
  // trim threshold: a pass whose activations span heaps faulted them in
  // again every time (540,000 page faults in 12 s, passes 2-4x slower,
  // depending on which arena a worker thread drew).
  mallopt(M_ARENA_MAX, 1);
}

}  // namespace unet
