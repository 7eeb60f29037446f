#ifndef COMMON_MACHINE_MEMORY_H_
#define COMMON_MACHINE_MEMORY_H_

// How much memory this process may use, for defaults that scale with the
// machine.

#include <cstdint>

namespace unet {

// The smaller of the machine's physical memory and the cgroup's limit
// (memory.max of cgroup v2, as a container's --memory sets it).
int64_t UsableMemoryBytes();

// Sets glibc's allocator up for forward passes (the server, the benchmark,
// the trainer), before any thread starts. Buffers
// of 32 MiB and more (images and activations of large requests) are mapped
// and go back to the system when freed, so that RSS returns after a large
// request. Smaller ones, such as every activation of a 512 x 512 image's
// forward pass, are reused from one heap shared by all threads: mapping
// them afresh for each pass made the pass 2-8x slower on this project's VM
// (docs/performance.md), all of it in page faults.
void TuneAllocator();

}  // namespace unet

#endif  // COMMON_MACHINE_MEMORY_H_
