/* memtune.h — (bench only) process-wide glibc allocator settings for the benches'
 * straightforward rows, and the peak-RSS probe. A training step of the straightforward
 * order allocates and frees the same multi-GB set of activation buffers every step;
 * glibc serves blocks above its mmap threshold with fresh mmap()s and returns them with
 * munmap(), so every step page-faults its whole working set in again (zeroed by the
 * kernel). Keeping freed memory in the heap lets the next step reuse it without faults.
 * dhf train itself uses the shim's caching allocator instead. Header-only: every bench
 * source file is its own program. */
#ifndef DHF_BENCH_MEMTUNE_H
#define DHF_BENCH_MEMTUNE_H

#include <malloc.h>
#include <sys/resource.h>

#include "core/error.h"

/* Call once at program start, before large allocations: all allocations come from
 * the heap (no per-block mmap) and the heap is never trimmed, so the process keeps
 * its peak footprint. Returns 0, or -1 (message set) if glibc refused a setting. */
static inline int dhf_memtune_keep_freed_memory(void)
{
#if defined(__GLIBC__)
    /* M_MMAP_MAX 0: no allocation is served by its own mmap (a raised threshold is
     * capped at 32 MiB and tensors are larger); M_TRIM_THRESHOLD -1: never give the
     * top of the heap back (documented in mallopt(3)); M_TOP_PAD: grow in big steps */
    if (mallopt(M_MMAP_MAX, 0) != 1)
        return dhf_err_set("mallopt(M_MMAP_MAX, 0) refused");
    if (mallopt(M_TRIM_THRESHOLD, -1) != 1)
        return dhf_err_set("mallopt(M_TRIM_THRESHOLD) refused");
    if (mallopt(M_TOP_PAD, 64 << 20) != 1)
        return dhf_err_set("mallopt(M_TOP_PAD) refused");
#endif
    return 0;
}

/* Peak resident set size of this process so far, in bytes (getrusage). */
static inline long long dhf_memtune_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (long long)ru.ru_maxrss * 1024;   /* Linux reports KiB */
}

#endif
