#ifndef COMMON_MACHINE_MEMORY_H_
#define COMMON_MACHINE_MEMORY_H_

// How much memory this process may use, for defaults that scale with the
// machine.

#include <cstdint>

namespace unet {

// The smaller of the machine's physical memory and the cgroup's limit
// (memory.max of cgroup v2, as a container's --memory sets it).
int64_t UsableMemoryBytes();

}  // namespace unet

#endif  // COMMON_MACHINE_MEMORY_H_
