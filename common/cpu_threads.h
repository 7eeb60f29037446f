#ifndef COMMON_CPU_THREADS_H_
#define COMMON_CPU_THREADS_H_

// How many intra-op threads each CPU worker's forward pass gets when the
// operator does not say (--cpu_threads 0).

namespace unet {

// The CPUs this process may run on (its affinity mask, as a container's
// cpuset limits it).
int UsableCpus();

// Splits `usable_cpus` among the CPU workers, at least one thread each.
// LibTorch's own default counts physical cores as cpuinfo reports them,
// which on some virtual machines is one, leaving the other CPUs idle.
int DefaultCpuThreads(int usable_cpus, int cpu_workers);

}  // namespace unet

#endif  // COMMON_CPU_THREADS_H_
