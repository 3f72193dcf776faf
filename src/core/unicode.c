/* unicode.c — UTF-8, character classes, lower-casing and NFD over the generated
 * tables (unicode.h). */
#include "core/unicode.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/unicode_tables.h"

static int range_value(const dhf_urange *r, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid].lo)
            hi = mid - 1;
        else if (cp > r[mid].hi)
            lo = mid + 1;
        else
            return r[mid].value;
    }
    return 0;
}

static const dhf_umap *map_find(const dhf_umap *m, int n, uint32_t cp)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < m[mid].cp)
            hi = mid - 1;
        else if (cp > m[mid].cp)
            lo = mid + 1;
        else
            return &m[mid];
    }
    return NULL;
}

dhf_uclass dhf_uclass_of(uint32_t cp)
{
    return cp >= 0x110000 ? DHF_U_CONTROL
                          : (dhf_uclass)range_value(dhf_uclass_ranges, dhf_uclass_count, cp);
}

int dhf_uccc(uint32_t cp) { return range_value(dhf_uccc_ranges, dhf_uccc_count, cp); }
bool dhf_ucased(uint32_t cp) { return range_value(dhf_ucase_ranges, dhf_ucase_count, cp) & 1; }
bool dhf_ucase_ignorable(uint32_t cp)
{
    return (range_value(dhf_ucase_ranges, dhf_ucase_count, cp) & 2) != 0;
}

int dhf_ustr_push(dhf_ustr *s, uint32_t cp)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        uint32_t *p = realloc(s->cp, cap * sizeof *p);
        if (!p)
            return dhf_err_set("out of memory");
        s->cp = p;
        s->cap = cap;
    }
    s->cp[s->n++] = cp;
    return 0;
}

void dhf_ustr_free(dhf_ustr *s)
{
    free(s->cp);
    memset(s, 0, sizeof *s);
}

int dhf_utf8_decode(const char *str, size_t len, dhf_ustr *out)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len;) {
        uint32_t c = s[i];
        int n = c < 0x80 ? 0 : (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || i + (size_t)n >= len)
            return dhf_err_set("invalid UTF-8 at byte %zu", i);
        uint32_t cp = n == 0 ? c : n == 1 ? c & 0x1F : n == 2 ? c & 0x0F : c & 0x07;
        for (int k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return dhf_err_set("invalid UTF-8 at byte %zu", i);
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        static const uint32_t min[4] = {0, 0x80, 0x800, 0x10000};
        if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return dhf_err_set("invalid UTF-8 at byte %zu", i);
        if (dhf_ustr_push(out, cp) != 0)
            return -1;
        i += (size_t)n + 1;
    }
    return 0;
}

int dhf_utf8_encode(uint32_t cp, char *b)
{
    if (cp < 0x80) {
        b[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Python's final-sigma rule: Σ becomes ς when a cased letter precedes it (skipping
 * case-ignorable characters) and none follows. */
static bool final_sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    bool before = false;
    while (j > 0) {
        uint32_t c = s[--j];
        if (dhf_ucase_ignorable(c))
            continue;
        before = dhf_ucased(c);
        break;
    }
    if (!before)
        return false;
    for (j = i + 1; j < n; j++) {
        if (dhf_ucase_ignorable(s[j]))
            continue;
        return !dhf_ucased(s[j]);
    }
    return true;
}

int dhf_ulower_str(const uint32_t *s, size_t n, dhf_ustr *out)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == 0x03A3) {
            if (dhf_ustr_push(out, final_sigma(s, n, i) ? 0x03C2 : 0x03C3) != 0)
                return -1;
            continue;
        }
        const dhf_umap *m = map_find(dhf_ulower, dhf_ulower_count, s[i]);
        if (!m) {
            if (dhf_ustr_push(out, s[i]) != 0)
                return -1;
            continue;
        }
        for (int k = 0; k < m->n; k++)
            if (dhf_ustr_push(out, dhf_upool[m->off + (uint32_t)k]) != 0)
                return -1;
    }
    return 0;
}

/* Hangul syllables decompose algorithmically (Unicode 3.12). */
enum { SBASE = 0xAC00, LBASE = 0x1100, VBASE = 0x1161, TBASE = 0x11A7, TCOUNT = 28,
       NCOUNT = 588, SCOUNT = 11172 };

int dhf_unfd_str(const uint32_t *s, size_t n, dhf_ustr *out)
{
    size_t start = out->n;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = s[i];
        if (c >= SBASE && c < SBASE + SCOUNT) {
            uint32_t si = c - SBASE;
            if (dhf_ustr_push(out, LBASE + si / NCOUNT) != 0 ||
                dhf_ustr_push(out, VBASE + (si % NCOUNT) / TCOUNT) != 0 ||
                (si % TCOUNT && dhf_ustr_push(out, TBASE + si % TCOUNT) != 0))
                return -1;
            continue;
        }
        const dhf_umap *m = map_find(dhf_udecomp, dhf_udecomp_count, c);
        if (!m) {
            if (dhf_ustr_push(out, c) != 0)
                return -1;
            continue;
        }
        for (int k = 0; k < m->n; k++)
            if (dhf_ustr_push(out, dhf_upool[m->off + (uint32_t)k]) != 0)
                return -1;
    }
    /* canonical ordering: a stable sort of every run of non-starters by class */
    uint32_t *a = out->cp + start;
    size_t m = out->n - start;
    for (size_t i = 1; i < m; i++) {
        int ci = dhf_uccc(a[i]);
        if (ci == 0)
            continue;
        size_t j = i;
        uint32_t c = a[i];
        while (j > 0 && dhf_uccc(a[j - 1]) > ci) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = c;
    }
    return 0;
}
