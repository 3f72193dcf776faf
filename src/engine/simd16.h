/* simd16.h — one 16-channel block of a blocked plane (blocked.h) as a GCC/Clang
 * vector value: explicit 16-lane arithmetic that compiles to one AVX-512 register, two
 * AVX2 or four SSE ones (per DHF_HOT clone), where the auto-vectoriser was left to
 * guess across pixels and gathered. Loads and stores tolerate any float alignment.
 * Macros, not functions: a function returning a 64-byte vector changes the ABI
 * between the clones. */
#ifndef DHF_ENGINE_SIMD16_H
#define DHF_ENGINE_SIMD16_H

#include <stdint.h>

/* Hot loops are compiled for AVX-512, AVX2 and baseline x86-64, picked at load time
 * (GCC function multi-versioning), so the binary still runs on any x86-64. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__SANITIZE_ADDRESS__)
#define DHF_HOT __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DHF_HOT
#endif


typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4), may_alias));

#define V16_LOAD(p) (*(const v16 *)(p))
#define V16_STORE(p, v) (*(v16 *)(p) = (v))
/* x where keep > 0, else 0 (keep, x: v16) */
#define V16_WHERE_POS(keep, x) ((v16)((v16i)(x) & (v16i)((keep) > 0.f)))
#define V16_RELU(x) V16_WHERE_POS((x), (x))

/* Streaming (non-temporal) store of a pixel block to a 64-byte aligned address: for
 * buffers far larger than the caches, written once and read back only later; skips
 * reading the destination line before writing it (half the memory traffic of a
 * store). Stores made this way must be fenced (V16_STREAM_FENCE) by the thread that
 * made them before another thread reads them. */
#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
/* four SSE streaming stores: the baseline instruction every clone has; the write-
 * combining buffer joins them into one 64-byte line */
#define V16_STREAM(p, v)                                                              \
    do {                                                                              \
        const v16 v16s_ = (v);                                                        \
        float *p16s_ = (p);                                                           \
        _mm_stream_ps(p16s_, __builtin_shufflevector(v16s_, v16s_, 0, 1, 2, 3));      \
        _mm_stream_ps(p16s_ + 4, __builtin_shufflevector(v16s_, v16s_, 4, 5, 6, 7));  \
        _mm_stream_ps(p16s_ + 8, __builtin_shufflevector(v16s_, v16s_, 8, 9, 10, 11)); \
        _mm_stream_ps(p16s_ + 12,                                                     \
                      __builtin_shufflevector(v16s_, v16s_, 12, 13, 14, 15));         \
    } while (0)
#define V16_STREAM_FENCE() _mm_sfence()
#else
#define V16_STREAM(p, v) V16_STORE(p, v)
#define V16_STREAM_FENCE() ((void)0)
#endif

#endif
