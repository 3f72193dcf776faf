/* subset.c — which pairs of a dataset are evaluated, and the record of that
 * choice: whole split, an explicit id list, or N per category drawn with a
 * documented PRNG (splitmix64 + partial Fisher-Yates over id-sorted pairs, so
 * the draw never depends on directory order), plus the FNV-1a hash of the
 * sorted ids that reports carry. */
#include "eval/dataset.h"
#include "eval/dataset_common.h"
#include "core/error.h"
#include "core/fsutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a64_update(uint64_t h, const void *data, size_t len)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

uint64_t dhf_fnv1a64(const void *data, size_t len)
{
    return fnv1a64_update(FNV_OFFSET, data, len);
}

uint64_t dhf_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

void dhf_draw_indices(size_t n, size_t k, uint64_t seed, size_t *out)
{
    if (k >= n) {
        for (size_t i = 0; i < n; i++)
            out[i] = i;
        return;
    }
    size_t *perm = malloc(sizeof(size_t) * (n ? n : 1));
    if (!perm) { /* cannot happen at dataset sizes; degrade deterministically */
        for (size_t i = 0; i < k; i++)
            out[i] = i;
        return;
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    uint64_t state = seed;
    for (size_t i = 0; i < k; i++) {
        size_t j = i + (size_t)(dhf_splitmix64(&state) % (uint64_t)(n - i));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    memcpy(out, perm, sizeof(size_t) * k);
    free(perm);
    qsort(out, k, sizeof(size_t), cmp_size);
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void dhf_subset_update_hash(dhf_dataset *ds)
{
    ds->subset.count = ds->n_pairs;
    uint64_t h = FNV_OFFSET;
    const char **ids = ds->n_pairs ? malloc(sizeof(char *) * ds->n_pairs) : NULL;
    if (ids) {
        for (size_t i = 0; i < ds->n_pairs; i++)
            ids[i] = ds->pairs[i].id;
        qsort(ids, ds->n_pairs, sizeof(char *), cmp_cstr);
        for (size_t i = 0; i < ds->n_pairs; i++) {
            h = fnv1a64_update(h, ids[i], strlen(ids[i]));
            h = fnv1a64_update(h, "\n", 1);
        }
        free(ids);
    }
    snprintf(ds->subset.hash, sizeof ds->subset.hash, "%016llx", (unsigned long long)h);
}

int dhf_subset_full(dhf_dataset *ds)
{
    memset(&ds->subset, 0, sizeof ds->subset);
    snprintf(ds->subset.name, sizeof ds->subset.name, "full");
    dhf_subset_update_hash(ds);
    return 0;
}

/* Orders by category, then id: the layout per-category draws work on. */
static int cmp_cat_id(const void *a, const void *b)
{
    const dhf_pair *x = a, *y = b;
    int c = strcmp(x->category, y->category);
    return c ? c : strcmp(x->id, y->id);
}

int dhf_subset_per_category(dhf_dataset *ds, int n, uint64_t seed)
{
    if (n <= 0)
        return dhf_err_set("pairs per category must be > 0, got %d", n);
    if (ds->n_pairs == 0)
        return dhf_err_set("%s: no pairs to draw %d per category from", ds->root, n);
    qsort(ds->pairs, ds->n_pairs, sizeof(dhf_pair), cmp_cat_id);
    unsigned char *keep = calloc(ds->n_pairs, 1);
    size_t *chosen = malloc(sizeof(size_t) * (size_t)n);
    if (!keep || !chosen) {
        free(keep);
        free(chosen);
        return dhf_err_set("out of memory drawing a subset");
    }
    for (size_t a = 0; a < ds->n_pairs;) {
        size_t b = a;
        while (b < ds->n_pairs && strcmp(ds->pairs[b].category, ds->pairs[a].category) == 0)
            b++;
        const char *cat = ds->pairs[a].category;
        uint64_t cat_seed = seed ^ dhf_fnv1a64(cat, strlen(cat));
        size_t k = (size_t)n < b - a ? (size_t)n : b - a;
        dhf_draw_indices(b - a, k, cat_seed, chosen);
        for (size_t i = 0; i < k; i++)
            keep[a + chosen[i]] = 1;
        a = b;
    }
    size_t w = 0;
    for (size_t i = 0; i < ds->n_pairs; i++) {
        if (keep[i])
            ds->pairs[w++] = ds->pairs[i];
        else
            dhf_pair_free(&ds->pairs[i]);
    }
    ds->n_pairs = w;
    free(keep);
    free(chosen);

    /* A draw from an explicit list keeps naming the list; drawing again
     * replaces the previous draw's suffix rather than stacking it. */
    if (ds->subset.list_path[0])
        snprintf(ds->subset.name, sizeof ds->subset.name, "list:%.200s/per-category-%d",
                 dhf_basename(ds->subset.list_path), n);
    else
        snprintf(ds->subset.name, sizeof ds->subset.name, "per-category-%d", n);
    ds->subset.per_category = n;
    ds->subset.seed = seed;
    dhf_subset_update_hash(ds);
    return 0;
}

typedef struct {
    const char *id;
    size_t index;
} id_entry;

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const id_entry *)a)->id, ((const id_entry *)b)->id);
}

int dhf_subset_from_id_list(dhf_dataset *ds, const char *list_path)
{
    char *text;
    if (dhf_read_file(list_path, &text, NULL) != 0)
        return -1;
    id_entry *index = malloc(sizeof(id_entry) * (ds->n_pairs ? ds->n_pairs : 1));
    unsigned char *taken = calloc(ds->n_pairs ? ds->n_pairs : 1, 1);
    dhf_pair *out = NULL;
    size_t n_out = 0, cap = 0;
    int rc = 0;
    if (!index || !taken) {
        rc = dhf_err_set("out of memory reading %s", list_path);
        goto done;
    }
    for (size_t i = 0; i < ds->n_pairs; i++)
        index[i] = (id_entry){ds->pairs[i].id, i};
    qsort(index, ds->n_pairs, sizeof *index, cmp_entry);

    int line_no = 0;
    for (char *line = text, *next; line && *line; line = next) {
        line_no++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        size_t len = strlen(line);
        while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line || *line == '#')
            continue;
        id_entry key = {line, 0};
        id_entry *hit = bsearch(&key, index, ds->n_pairs, sizeof *index, cmp_entry);
        if (!hit) {
            rc = dhf_err_set("%s:%d: pair '%s' is not in %s split '%s'", list_path, line_no, line,
                             ds->name, ds->split);
            goto done;
        }
        if (taken[hit->index]) {
            rc = dhf_err_set("%s:%d: pair '%s' listed twice", list_path, line_no, line);
            goto done;
        }
        taken[hit->index] = 1;
        if (n_out == cap) {
            cap = cap ? cap * 2 : 64;
            dhf_pair *np = realloc(out, sizeof(dhf_pair) * cap);
            if (!np) {
                rc = dhf_err_set("out of memory reading %s", list_path);
                goto done;
            }
            out = np;
        }
        out[n_out++] = ds->pairs[hit->index];
    }
    if (n_out == 0) {
        rc = dhf_err_set("%s: lists no pairs", list_path);
        goto done;
    }
    for (size_t i = 0; i < ds->n_pairs; i++)
        if (!taken[i])
            dhf_pair_free(&ds->pairs[i]);
    free(ds->pairs);
    ds->pairs = out;
    ds->n_pairs = n_out;
    out = NULL;
    memset(&ds->subset, 0, sizeof ds->subset);
    snprintf(ds->subset.name, sizeof ds->subset.name, "list:%.240s", dhf_basename(list_path));
    snprintf(ds->subset.list_path, sizeof ds->subset.list_path, "%s", list_path);
    dhf_subset_update_hash(ds);
done:
    free(out); /* pairs still owned by ds on failure */
    free(index);
    free(taken);
    free(text);
    return rc;
}
