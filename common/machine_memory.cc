#include "common/machine_memory.h"

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

}  // namespace unet
