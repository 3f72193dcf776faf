/* half_float.h — IEEE 754 binary16 <-> binary32 conversion for the feature cache.
 * The cache stores float16 bits that it computed itself (rather than letting HDF5's
 * generic soft conversion do it) so the stored bits are well defined and reads are
 * fast: float32 -> float16 rounds to nearest, ties to even, produces subnormals,
 * overflows to +-inf from 65520 on, and keeps NaN a (quiet) NaN with its sign. */
#ifndef DHF_CACHE_HALF_FLOAT_H
#define DHF_CACHE_HALF_FLOAT_H

#include <stddef.h>
#include <stdint.h>

uint16_t dhf_half_from_float(float f);
float dhf_half_to_float(uint16_t h);

void dhf_half_from_float_n(const float *src, uint16_t *dst, size_t n);
void dhf_half_to_float_n(const uint16_t *src, float *dst, size_t n);

#endif
