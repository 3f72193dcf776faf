/* omp_threads.h — the OpenMP team size and thread number, or 1 and 0 in a build
 * without OpenMP: for the engine's loops that split rows among threads by hand. */
#ifndef DHF_ENGINE_OMP_THREADS_H
#define DHF_ENGINE_OMP_THREADS_H

#ifdef _OPENMP
#include <omp.h>
#endif

static inline int dhf_omp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static inline int dhf_omp_thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

#endif
