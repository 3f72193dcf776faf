/* fma_peak.h — the machine's measured arithmetic peak, all cores (header-only, for the
 * bench programs): float32 FMA (12 independent 16-lane vfmadd chains per thread) and
 * bfloat16 dot products (12 chains of vdpbf16ps, 64 FLOP each) on CPUs with
 * AVX512-BF16. Best of 3; 0 where the instructions are missing. */
#ifndef DHF_BENCH_FMA_PEAK_H
#define DHF_BENCH_FMA_PEAK_H

#include "core/clock.h"
#include "engine/omp_threads.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Best of 3 timings of `chains` (all threads; returns a value so nothing is optimised
 * away), as GFLOP/s for flop_per_iter floating-point operations per iteration. */
static inline double peak_best_of_3(float (*chains)(long iters), double flop_per_iter)
{
    const long iters = 20000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = dhf_now();
        float sink = chains(iters);
        double g = (double)iters * flop_per_iter * dhf_omp_max_threads() / (dhf_now() - t0) / 1e9;
        if (g > best && sink == sink)
            best = g;
    }
    return best;
}

__attribute__((target("avx512f"))) static inline float fma_chains(long iters)
{
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
        __m512 a[12];
        for (int i = 0; i < 12; i++)
            a[i] = _mm512_set1_ps(1e-3f * (float)i);
        const __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-4f);
        for (long n = 0; n < iters; n++)
            for (int i = 0; i < 12; i++)
                a[i] = _mm512_fmadd_ps(a[i], b, c);
        __m512 s = a[0];
        for (int i = 1; i < 12; i++)
            s = _mm512_add_ps(s, a[i]);
        sink += _mm512_reduce_add_ps(s);
    }
    return sink;
}

__attribute__((target("avx512f,avx512bf16"))) static inline float bf16_chains(long iters)
{
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
        __m512 a[12];
        for (int i = 0; i < 12; i++)
            a[i] = _mm512_set1_ps(1e-3f * (float)i);
        const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80),   /* 1.0 */
                       c = (__m512bh)_mm512_set1_epi16(0x3727);   /* ~1e-5 */
        for (long n = 0; n < iters; n++)
            for (int i = 0; i < 12; i++)
                a[i] = _mm512_dpbf16_ps(a[i], b, c);
        __m512 s = a[0];
        for (int i = 1; i < 12; i++)
            s = _mm512_add_ps(s, a[i]);
        sink += _mm512_reduce_add_ps(s);
    }
    return sink;
}

/* 12 chains x 16 lanes x 2 FLOP per vfmadd */
static inline double fma_peak_gflops(void)
{
    return __builtin_cpu_supports("avx512f") ? peak_best_of_3(fma_chains, 12 * 32) : 0;
}

/* 12 chains x 16 lanes x 2 products x 2 FLOP per vdpbf16ps */
static inline double bf16_peak_gflops(void)
{
    return __builtin_cpu_supports("avx512bf16") ? peak_best_of_3(bf16_chains, 12 * 64) : 0;
}
#else
static inline double fma_peak_gflops(void) { return 0; }
static inline double bf16_peak_gflops(void) { return 0; }
#endif

#endif
