/* memtune.h — process-wide allocator settings for training loops. A training step
 * allocates and frees the same multi-GB set of activation buffers every step; glibc
 * serves blocks above its mmap threshold with fresh mmap()s and returns them with
 * munmap(), so every step page-faults its whole working set in again (zeroed by the
 * kernel), which on a 2-core machine costs more than the arithmetic. Keeping freed
 * memory in the heap lets the next step reuse it without faults. */
#ifndef DHF_TRAIN_MEMTUNE_H
#define DHF_TRAIN_MEMTUNE_H

/* Call once at program start, before large allocations: all allocations come from
 * the heap (no per-block mmap) and the heap is never trimmed, so the process keeps
 * its peak footprint. Returns 0, or -1 (message set) if glibc refused a setting. */
int dhf_memtune_keep_freed_memory(void);

/* Peak resident set size of this process so far, in bytes (getrusage). */
long long dhf_memtune_peak_rss(void);

#endif
