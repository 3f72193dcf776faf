/* simd16.h — one 16-channel block of a blocked plane (blocked.h) as a GCC/Clang
 * vector value: explicit 16-lane arithmetic that compiles to one AVX-512 register, two
 * AVX2 or four SSE ones (per DHF_HOT clone), where the auto-vectoriser was left to
 * guess across pixels and gathered. Loads and stores tolerate any float alignment.
 * Macros, not functions: a function returning a 64-byte vector changes the ABI
 * between the clones. */
#ifndef DHF_TRAIN_SIMD16_H
#define DHF_TRAIN_SIMD16_H

#include <stdint.h>

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t v16i __attribute__((vector_size(64), aligned(4), may_alias));

#define V16_LOAD(p) (*(const v16 *)(p))
#define V16_STORE(p, v) (*(v16 *)(p) = (v))
/* x where keep > 0, else 0 (keep, x: v16) */
#define V16_WHERE_POS(keep, x) ((v16)((v16i)(x) & (v16i)((keep) > 0.f)))
#define V16_RELU(x) V16_WHERE_POS((x), (x))

#endif
