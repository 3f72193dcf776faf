/* memtune.c — glibc malloc settings that stop the page-fault churn of big tensor
 * buffers (see memtune.h), and the peak-RSS probe used by the bench and trainer. */
#include "train/memtune.h"

#include <malloc.h>
#include <sys/resource.h>

#include "core/error.h"

int dhf_memtune_keep_freed_memory(void)
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

long long dhf_memtune_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return -1;
    return (long long)ru.ru_maxrss * 1024;   /* Linux reports KiB */
}
