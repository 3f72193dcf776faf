/* extract_images.c — building the sorted, de-duplicated image set of an extraction
 * (extract_images.h). */
#include "extract/extract_images.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "eval/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dhf_image_set_free(dhf_image_set *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int push(dhf_image_set *s, int64_t *cap, const char *key, const char *path)
{
    if (s->n == *cap) {
        int64_t nc = *cap ? *cap * 2 : 256;
        dhf_cache_image *v = realloc(s->v, (size_t)nc * sizeof *v);
        if (!v)
            return dhf_err_set("out of memory for %lld image names", (long long)nc);
        s->v = v;
        *cap = nc;
    }
    dhf_cache_image *im = &s->v[s->n];
    memset(im, 0, sizeof *im);
    if ((size_t)snprintf(im->key, sizeof im->key, "%s", key) >= sizeof im->key)
        return dhf_err_set("image key too long (max %d bytes): %s", DHF_CACHE_KEY_LEN - 1, key);
    if ((size_t)snprintf(im->path, sizeof im->path, "%s", path) >= sizeof im->path)
        return dhf_err_set("image path too long (max %d bytes): %s", DHF_CACHE_PATH_LEN - 1,
                           path);
    s->n++;
    return 0;
}

static int by_key(const void *a, const void *b)
{
    const dhf_cache_image *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : strcmp(x->path, y->path);
}

/* Sorts, drops exact duplicates, refuses one key naming two files, reads sizes. */
static int finish(dhf_image_set *s)
{
    if (s->n == 0)
        return dhf_err_set("%s: no images selected", s->source);
    qsort(s->v, (size_t)s->n, sizeof *s->v, by_key);
    int64_t w = 0;
    for (int64_t r = 0; r < s->n; r++) {
        if (w > 0 && strcmp(s->v[w - 1].key, s->v[r].key) == 0) {
            if (strcmp(s->v[w - 1].path, s->v[r].path) != 0)
                return dhf_err_set("%s: two images share the key '%s': %s and %s", s->source,
                                   s->v[r].key, s->v[w - 1].path, s->v[r].path);
            continue;
        }
        s->v[w++] = s->v[r];
    }
    s->n = w;
    for (int64_t r = 0; r < s->n; r++)
        if (dhf_image_size(s->v[r].path, &s->v[r].width, &s->v[r].height) != 0)
            return dhf_err_wrap("%s: image '%s'", s->source, s->v[r].key);
    return 0;
}

int dhf_image_set_from_list(const char *list_path, dhf_image_set *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->source, sizeof out->source, "image list %s", list_path);
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(list_path, &text, &len) != 0)
        return dhf_err_wrap("image list");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", list_path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int64_t cap = 0;
    int rc = 0, line_no = 0;
    for (char *line = text; line && *line && rc == 0;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line_no++;
        /* Trim surrounding blanks (and a CR from CRLF files). */
        while (*line == ' ' || *line == '\t')
            line++;
        size_t n = strlen(line);
        while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n > 0 && line[0] != '#') {
            char path[4096], key[4096];
            if (line[0] == '/')
                snprintf(path, sizeof path, "%s", line);
            else if (dhf_path_join(path, sizeof path, dir, line) != 0)
                rc = dhf_err_wrap("%s:%d", list_path, line_no);
            if (rc == 0) {
                const char *base = dhf_basename(path);
                char parent[4096];
                snprintf(parent, sizeof parent, "%.*s", (int)(base - path), path);
                size_t pl = strlen(parent);
                while (pl > 0 && parent[pl - 1] == '/')
                    parent[--pl] = '\0';
                const char *pbase = pl ? dhf_basename(parent) : "";
                snprintf(key, sizeof key, "%s%s%s", pbase, pbase[0] ? "/" : "", base);
                if (!base[0])
                    rc = dhf_err_set("%s:%d: not a file path: '%s'", list_path, line_no, line);
                else if (push(out, &cap, key, path) != 0)
                    rc = dhf_err_wrap("%s:%d", list_path, line_no);
            }
        }
        line = next;
    }
    free(text);
    if (rc == 0)
        rc = finish(out);
    if (rc != 0)
        dhf_image_set_free(out);
    return rc;
}

int dhf_image_set_from_dataset(const dhf_config *cfg, dhf_image_set *out)
{
    memset(out, 0, sizeof *out);
    bool cub = strcmp(cfg->dataset, "cub") == 0;
    const char *split = cfg->split, *pair_list = cfg->test_path;
    int per_category = cfg->pairs_per_category;
    if (strcmp(split, "trn") == 0) {
        pair_list = cfg->train_path;
        if (cub)
            split = "train";
    } else if (strcmp(split, "val") == 0) {
        pair_list = cfg->val_path;
        per_category = cfg->val_pairs_per_category;
        if (cub)
            return dhf_err_set("dataset cub has no val split (use split trn or test)");
    }
    dhf_dataset_spec spec = {
        .dataset = cfg->dataset,
        .root = cfg->data_root,
        .split = split,
        .pair_list = pair_list[0] ? pair_list : NULL,
        .pairs_per_category = per_category,
        .seed = (uint64_t)cfg->subset_seed,
    };
    dhf_dataset ds;
    if (dhf_dataset_open(&spec, &ds) != 0)
        return -1;
    snprintf(out->source, sizeof out->source, "%s %s (%s, %zu pairs)", ds.name, ds.split,
             ds.subset.name, ds.n_pairs);
    int64_t cap = 0;
    int rc = 0;
    for (size_t i = 0; i < ds.n_pairs && rc == 0; i++) {
        const dhf_pair *p = &ds.pairs[i];
        if (push(out, &cap, p->src_key, p->src_path) != 0 ||
            push(out, &cap, p->trg_key, p->trg_path) != 0)
            rc = dhf_err_wrap("%s: pair %s", out->source, p->id);
    }
    dhf_dataset_free(&ds);
    if (rc == 0)
        rc = finish(out);
    if (rc != 0)
        dhf_image_set_free(out);
    return rc;
}

int dhf_image_set_from_config(const dhf_config *cfg, dhf_image_set *out)
{
    if (cfg->image_list[0])
        return dhf_image_set_from_list(cfg->image_list, out);
    return dhf_image_set_from_dataset(cfg, out);
}
