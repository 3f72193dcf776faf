/* unicode_tables.h — the layout of the generated Unicode tables (unicode_tables.c, made
 * by scripts/gen_unicode_tables.py); only core/unicode.c reads them. */
#ifndef DHF_CORE_UNICODE_TABLES_H
#define DHF_CORE_UNICODE_TABLES_H

#include <stdint.h>

typedef struct {
    uint32_t lo, hi;   /* inclusive */
    uint8_t value;
} dhf_urange;

typedef struct {
    uint32_t cp;
    uint32_t off;      /* into dhf_upool */
    uint8_t n;
} dhf_umap;

extern const dhf_urange dhf_uclass_ranges[];
extern const int dhf_uclass_count;
extern const dhf_urange dhf_ucase_ranges[];   /* value bit 1 = cased, bit 2 = case-ignorable */
extern const int dhf_ucase_count;
extern const dhf_urange dhf_uccc_ranges[];    /* canonical combining class (non-zero only) */
extern const int dhf_uccc_count;
extern const uint32_t dhf_upool[];
extern const dhf_umap dhf_ulower[];           /* sorted by cp */
extern const int dhf_ulower_count;
extern const dhf_umap dhf_udecomp[];          /* sorted by cp; Hangul syllables excluded */
extern const int dhf_udecomp_count;

#endif
