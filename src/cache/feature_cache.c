/* feature_cache.c — the cache file's skeleton: layout checks, creating a file,
 * opening one for reading or resumed writing, the in-memory image index, metadata
 * getters, storage statistics and closing. Map I/O is in feature_cache_write.c and
 * feature_cache_read.c, merging in feature_cache_merge.c. */
#include "cache/feature_cache_internal.h"
#include "cache/h5_util.h"
#include "core/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

const char *dhf_cache_dtype_name(dhf_cache_dtype dt)
{
    return dt == DHF_CACHE_F32 ? "float32" : "float16";
}

int dhf_cache_dtype_parse(const char *s, dhf_cache_dtype *out)
{
    if (strcmp(s, "float16") == 0)
        *out = DHF_CACHE_F16;
    else if (strcmp(s, "float32") == 0)
        *out = DHF_CACHE_F32;
    else
        return dhf_err_set("cache dtype: expected float16 or float32, got '%s'", s);
    return 0;
}

size_t dhf_cache_dtype_size(dhf_cache_dtype dt)
{
    return dt == DHF_CACHE_F32 ? 4 : 2;
}

void dhf_cache_layout_init(dhf_cache_layout *l)
{
    memset(l, 0, sizeof *l);
    l->dtype = DHF_CACHE_F16;
    l->config_json = "{}";
    l->identity_json = "{}";
}

static int validate_layout(const dhf_cache_layout *l)
{
    if (l->num_layers < 1 || l->num_layers > DHF_CACHE_MAX_LAYERS)
        return dhf_err_set("cache layout: num_layers must be 1..%d, got %d",
                           DHF_CACHE_MAX_LAYERS, l->num_layers);
    if (l->num_steps < 1 || l->num_steps > DHF_CACHE_MAX_STEPS)
        return dhf_err_set("cache layout: num_steps must be 1..%d, got %d",
                           DHF_CACHE_MAX_STEPS, l->num_steps);
    for (int i = 0; i < l->num_layers; i++)
        for (int d = 0; d < 3; d++)
            if (l->layer_chw[i][d] < 1 || l->layer_chw[i][d] > (1 << 20))
                return dhf_err_set("cache layout: layer %d: shape entry %d must be "
                                   "1..%d, got %lld", i + 1, d, 1 << 20,
                                   (long long)l->layer_chw[i][d]);
    if (l->dtype != DHF_CACHE_F16 && l->dtype != DHF_CACHE_F32)
        return dhf_err_set("cache layout: invalid dtype %d", (int)l->dtype);
    if (l->compression < 0 || l->compression > 9)
        return dhf_err_set("cache layout: compression must be 0..9, got %d", l->compression);
    if (!l->config_json || !l->identity_json)
        return dhf_err_set("cache layout: config_json and identity_json are required");
    return 0;
}

/* Names the first top-level key whose value differs between two JSON objects. */
static void json_first_difference(const char *a, const char *b, char *out, size_t n)
{
    cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
    snprintf(out, n, "(not comparable)");
    if (ja && jb) {
        const cJSON *it;
        cJSON_ArrayForEach(it, ja) {
            const cJSON *other = cJSON_GetObjectItemCaseSensitive(jb, it->string);
            if (!other || !cJSON_Compare(it, other, true)) {
                char *va = cJSON_PrintUnformatted(it);
                char *vb = other ? cJSON_PrintUnformatted(other) : NULL;
                snprintf(out, n, "'%s': %s vs %s", it->string ? it->string : "?",
                         va ? va : "?", vb ? vb : "(absent)");
                free(va);
                free(vb);
                goto done;
            }
        }
        cJSON_ArrayForEach(it, jb) {
            if (!cJSON_GetObjectItemCaseSensitive(ja, it->string)) {
                snprintf(out, n, "'%s': (absent) vs present", it->string ? it->string : "?");
                goto done;
            }
        }
    }
done:
    cJSON_Delete(ja);
    cJSON_Delete(jb);
}

static bool json_equal(const char *a, const char *b)
{
    cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
    bool eq = ja && jb ? cJSON_Compare(ja, jb, true) : strcmp(a, b) == 0;
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    return eq;
}

int dhf_cache_layout_check_same(const dhf_cache_layout *a, const char *name_a,
                                const dhf_cache_layout *b, const char *name_b)
{
#define DIFFER(...)                                                                    \
    do {                                                                               \
        char what_[1024];                                                              \
        snprintf(what_, sizeof what_, __VA_ARGS__);                                    \
        return dhf_err_set("%s and %s were extracted differently: %s", name_a, name_b, \
                           what_);                                                     \
    } while (0)
    if (!json_equal(a->identity_json, b->identity_json)) {
        char diff[900];
        json_first_difference(a->identity_json, b->identity_json, diff, sizeof diff);
        DIFFER("extraction setting %s", diff);
    }
    if (strcmp(a->model_hash, b->model_hash) != 0)
        DIFFER("model %s (hash %s) vs %s (hash %s)", a->model_name, a->model_hash,
               b->model_name, b->model_hash);
    if (a->dtype != b->dtype)
        DIFFER("cache_dtype %s vs %s", dhf_cache_dtype_name(a->dtype),
               dhf_cache_dtype_name(b->dtype));
    if (a->num_steps != b->num_steps)
        DIFFER("%d vs %d saved steps", a->num_steps, b->num_steps);
    for (int s = 0; s < a->num_steps; s++)
        if (a->save_label[s] != b->save_label[s] || a->unet_timestep[s] != b->unet_timestep[s])
            DIFFER("saved step %d: label %lld (UNet t %g) vs label %lld (UNet t %g)", s,
                   (long long)a->save_label[s], a->unet_timestep[s],
                   (long long)b->save_label[s], b->unet_timestep[s]);
    if (a->num_layers != b->num_layers)
        DIFFER("%d vs %d layers", a->num_layers, b->num_layers);
    for (int l = 0; l < a->num_layers; l++) {
        const int64_t *x = a->layer_chw[l], *y = b->layer_chw[l];
        if (x[0] != y[0] || x[1] != y[1] || x[2] != y[2] ||
            strcmp(a->layer_name[l], b->layer_name[l]) != 0)
            DIFFER("layer %d: %s [%lld, %lld, %lld] vs %s [%lld, %lld, %lld]", l + 1,
                   a->layer_name[l], (long long)x[0], (long long)x[1], (long long)x[2],
                   b->layer_name[l], (long long)y[0], (long long)y[1], (long long)y[2]);
    }
    return 0;
#undef DIFFER
}

/* ---- image index ----------------------------------------------------------- */

static uint64_t key_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

static int rehash(dhf_feature_cache *c, size_t n_slots)
{
    int64_t *slots = malloc(n_slots * sizeof *slots);
    if (!slots)
        return dhf_err_set("%s: out of memory for the image index", c->path);
    for (size_t i = 0; i < n_slots; i++)
        slots[i] = -1;
    free(c->slots);
    c->slots = slots;
    c->n_slots = n_slots;
    for (int64_t r = 0; r < c->n_images; r++) {
        size_t i = key_hash(c->images[r].key) & (n_slots - 1);
        while (slots[i] >= 0)
            i = (i + 1) & (n_slots - 1);
        slots[i] = r;
    }
    return 0;
}

int64_t dhf_cache_find(const dhf_feature_cache *c, const char *key)
{
    if (!c->n_slots)
        return -1;
    size_t i = key_hash(key) & (c->n_slots - 1);
    while (c->slots[i] >= 0) {
        if (strcmp(c->images[c->slots[i]].key, key) == 0)
            return c->slots[i];
        i = (i + 1) & (c->n_slots - 1);
    }
    return -1;
}

int dhf_cache__reserve_rows(dhf_feature_cache *c, int64_t n)
{
    if (n <= c->cap_images)
        return 0;
    int64_t cap = c->cap_images ? c->cap_images : 64;
    while (cap < n)
        cap *= 2;
    dhf_cache_image *im = realloc(c->images, (size_t)cap * sizeof *im);
    if (!im)
        return dhf_err_set("%s: out of memory for %lld index rows", c->path, (long long)cap);
    c->images = im;
    uint8_t *st = realloc(c->status, (size_t)cap);
    if (!st)
        return dhf_err_set("%s: out of memory for %lld index rows", c->path, (long long)cap);
    c->status = st;
    c->cap_images = cap;
    return 0;
}

/* Row `row` (< c->n_images) is filled in; makes it findable. */
int dhf_cache__index_insert(dhf_feature_cache *c, int64_t row)
{
    if ((size_t)(row + 1) * 2 > c->n_slots) {
        size_t n = c->n_slots ? c->n_slots : 128;
        while ((size_t)(row + 1) * 2 > n)
            n *= 2;
        return rehash(c, n);   /* rehash inserts rows 0..n_images-1 */
    }
    size_t i = key_hash(c->images[row].key) & (c->n_slots - 1);
    while (c->slots[i] >= 0)
        i = (i + 1) & (c->n_slots - 1);
    c->slots[i] = row;
    return 0;
}

int dhf_cache__scratch(dhf_feature_cache *c, size_t bytes)
{
    if (bytes <= c->scratch_bytes)
        return 0;
    void *p = realloc(c->scratch, bytes);
    if (!p)
        return dhf_err_set("%s: out of memory (%zu bytes of map buffer)", c->path, bytes);
    c->scratch = p;
    c->scratch_bytes = bytes;
    return 0;
}

hid_t dhf_cache__mem_type(const dhf_feature_cache *c)
{
    return c->layout.dtype == DHF_CACHE_F32 ? H5T_NATIVE_FLOAT : c->half_type;
}

int dhf_cache__select(const dhf_feature_cache *c, int layer, int64_t row, int step0,
                      int nsteps, hid_t *file_space, hid_t *mem_space)
{
    const int64_t *chw = c->layout.layer_chw[layer];
    hsize_t off[5] = {(hsize_t)row, (hsize_t)step0, 0, 0, 0};
    hsize_t cnt[5] = {1, (hsize_t)nsteps, (hsize_t)chw[0], (hsize_t)chw[1], (hsize_t)chw[2]};
    hid_t fs = H5Dget_space(c->layer[layer]);
    if (fs < 0 || H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0) {
        dhf_err_set("%s: layer %d: cannot select row %lld: %s", c->path, layer + 1,
                    (long long)row, dhf_h5_error());
        if (fs >= 0)
            H5Sclose(fs);
        return -1;
    }
    hid_t ms = H5Screate_simple(5, cnt, NULL);
    if (ms < 0) {
        H5Sclose(fs);
        return dhf_err_set("%s: %s", c->path, dhf_h5_error());
    }
    *file_space = fs;
    *mem_space = ms;
    return 0;
}

int dhf_cache__sync(dhf_feature_cache *c)
{
    if (H5Fflush(c->file, H5F_SCOPE_GLOBAL) < 0)
        return dhf_err_set("%s: flush failed: %s", c->path, dhf_h5_error());
    if (c->skip_fsync)
        return 0;
    void *handle = NULL;
    if (H5Fget_vfd_handle(c->file, H5P_DEFAULT, &handle) < 0 || !handle)
        return dhf_err_set("%s: cannot reach the file descriptor: %s", c->path, dhf_h5_error());
    if (fsync(*(int *)handle) != 0)
        return dhf_err_set("%s: fsync failed: %s", c->path, strerror(errno));
    return 0;
}

/* ---- opening ------------------------------------------------------------- */

static dhf_feature_cache *handle_new(const char *path)
{
    size_t len = strlen(path);
    dhf_feature_cache *c = len < sizeof c->path ? calloc(1, sizeof *c) : NULL;
    if (!c) {
        dhf_err_set(len < sizeof c->path ? "%s: out of memory" : "%s: path too long", path);
        return NULL;
    }
    memcpy(c->path, path, len + 1);
    c->file = c->idx_key = c->idx_path = c->idx_width = c->idx_height = c->idx_status = -1;
    c->half_type = c->key_type = c->path_type = -1;
    for (int i = 0; i < DHF_CACHE_MAX_LAYERS; i++)
        c->layer[i] = -1;
    c->lock_fd = -1;
    for (int i = 0; i < DHF_CACHE_MAX_PENDING; i++)
        c->pending[i].row = -1;
    return c;
}

static void close_id(hid_t *id, herr_t (*fn)(hid_t))
{
    if (*id >= 0)
        fn(*id);
    *id = -1;
}

/* Releases everything; returns -1 if a writer's final flush failed. */
static int handle_free(dhf_feature_cache *c)
{
    int rc = 0;
    if (c->writable && c->file >= 0 && dhf_cache__sync(c) != 0)
        rc = -1;
    for (int i = 0; i < DHF_CACHE_MAX_LAYERS; i++)
        close_id(&c->layer[i], H5Dclose);
    close_id(&c->idx_key, H5Dclose);
    close_id(&c->idx_path, H5Dclose);
    close_id(&c->idx_width, H5Dclose);
    close_id(&c->idx_height, H5Dclose);
    close_id(&c->idx_status, H5Dclose);
    close_id(&c->half_type, H5Tclose);
    close_id(&c->key_type, H5Tclose);
    close_id(&c->path_type, H5Tclose);
    if (c->file >= 0 && H5Fclose(c->file) < 0 && rc == 0)
        rc = dhf_err_set("%s: close failed: %s", c->path, dhf_h5_error());
    c->file = -1;
    if (c->lock_fd >= 0) {
        unlink(c->lock_path);
        close(c->lock_fd);
    }
    free(c->config_json);
    free(c->identity_json);
    free(c->images);
    free(c->status);
    free(c->slots);
    free(c->scratch);
    free(c);
    return rc;
}

int dhf_cache_close(dhf_feature_cache *c)
{
    return c ? handle_free(c) : 0;
}

static int make_types(dhf_feature_cache *c)
{
    c->half_type = dhf_h5_half_type();
    c->key_type = dhf_h5_fixed_str_type(DHF_CACHE_KEY_LEN);
    c->path_type = dhf_h5_fixed_str_type(DHF_CACHE_PATH_LEN);
    if (c->half_type < 0 || c->key_type < 0 || c->path_type < 0)
        return dhf_err_set("%s: cannot create HDF5 types: %s", c->path, dhf_h5_error());
    return 0;
}

static hid_t file_access_plist(bool clear_status_flags)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return -1;
    /* SWMR needs the 1.10 file format (checksummed metadata, SWMR-safe chunk indexes). */
    H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_LATEST);
    /* Work on file systems without flock support (some NFS setups). */
    H5Pset_file_locking(fapl, true, true);
    if (clear_status_flags) {
        /* A killed SWMR writer leaves "open for writing" marks in the superblock that
         * make later opens fail; this is the (generic-name) property h5clear uses. If
         * this HDF5 lacks it, the open fails later with HDF5's own hint. */
        hbool_t yes = true;
        H5E_BEGIN_TRY { H5Pset(fapl, "clear_status_flags", &yes); }
        H5E_END_TRY;
    }
    return fapl;
}

static char *layer_dset_name(char *buf, size_t n, int layer)
{
    snprintf(buf, n, "layers/layer%02d", layer + 1);
    return buf;
}

static int read_string_attr(dhf_feature_cache *c, const char *name, char *dst, size_t n)
{
    char *v = NULL;
    if (dhf_h5_attr_read_str(c->file, name, &v) != 0)
        return dhf_err_wrap("%s", c->path);
    snprintf(dst, n, "%s", v);
    free(v);
    return 0;
}

/* Reads and checks the root attributes into c->layout. */
static int read_layout(dhf_feature_cache *c)
{
    dhf_cache_layout *l = &c->layout;
    dhf_cache_layout_init(l);
    char kind[64] = "";
    int64_t v[DHF_CACHE_MAX_LAYERS * 3];
    int n = 0;
    /* The version first: it is an integer, and schema 1 held its strings in a form this
     * reader no longer follows (h5_util.h). */
    if (H5Aexists(c->file, "dhf_kind") <= 0 ||
        dhf_h5_attr_read_i64(c->file, "dhf_schema_version", v, 1, &n) != 0 || n != 1) {
        dhf_err_clear();
        return dhf_err_set("%s: not a dhf feature cache (no root attributes dhf_kind and "
                           "dhf_schema_version)", c->path);
    }
    if (v[0] != DHF_CACHE_SCHEMA_VERSION)
        return dhf_err_set("%s: cache schema version %lld is not supported (this dhf "
                           "reads version %d; extract into a new file)", c->path,
                           (long long)v[0], DHF_CACHE_SCHEMA_VERSION);
    if (read_string_attr(c, "dhf_kind", kind, sizeof kind) != 0 ||
        strcmp(kind, DHF_CACHE_KIND) != 0)
        return dhf_err_set("%s: not a dhf feature cache (root attribute dhf_kind is not "
                           "\"%s\")", c->path, DHF_CACHE_KIND);
    char dtype[32];
    if (read_string_attr(c, "model_name", l->model_name, sizeof l->model_name) != 0 ||
        read_string_attr(c, "model_hash", l->model_hash, sizeof l->model_hash) != 0 ||
        read_string_attr(c, "cache_dtype", dtype, sizeof dtype) != 0)
        return -1;
    if (dhf_cache_dtype_parse(dtype, &l->dtype) != 0)
        return dhf_err_wrap("%s: attribute cache_dtype", c->path);
    if (dhf_h5_attr_read_str(c->file, "config_json", &c->config_json) != 0 ||
        dhf_h5_attr_read_str(c->file, "identity_json", &c->identity_json) != 0)
        return dhf_err_wrap("%s", c->path);
    l->config_json = c->config_json;
    l->identity_json = c->identity_json;
    if (dhf_h5_attr_read_i64(c->file, "compression", v, 1, &n) != 0 || n != 1)
        return dhf_err_wrap("%s", c->path);
    l->compression = (int)v[0];

    int ns = 0, nt = 0;
    if (dhf_h5_attr_read_i64(c->file, "save_timestep", l->save_label, DHF_CACHE_MAX_STEPS,
                             &ns) != 0 ||
        dhf_h5_attr_read_f64(c->file, "unet_timesteps", l->unet_timestep,
                             DHF_CACHE_MAX_STEPS, &nt) != 0)
        return dhf_err_wrap("%s", c->path);
    if (ns != nt || ns < 1)
        return dhf_err_set("%s: attributes save_timestep (%d values) and unet_timesteps "
                           "(%d values) disagree", c->path, ns, nt);
    l->num_steps = ns;

    int nl = 0, nshape = 0;
    if (dhf_h5_attr_read_str_array(c->file, "layer_names", &l->layer_name[0][0],
                                   DHF_CACHE_NAME_LEN, DHF_CACHE_MAX_LAYERS, &nl) != 0 ||
        dhf_h5_attr_read_i64(c->file, "layer_shapes", v, DHF_CACHE_MAX_LAYERS * 3,
                             &nshape) != 0)
        return dhf_err_wrap("%s", c->path);
    if (nl < 1 || nshape != 3 * nl)
        return dhf_err_set("%s: attribute layer_shapes holds %d values, expected 3 x %d "
                           "layers", c->path, nshape, nl);
    l->num_layers = nl;
    for (int i = 0; i < nl; i++)
        for (int d = 0; d < 3; d++)
            l->layer_chw[i][d] = v[3 * i + d];
    if (validate_layout(l) != 0)
        return dhf_err_wrap("%s", c->path);
    return 0;
}

static hid_t open_dataset(dhf_feature_cache *c, const char *name, hid_t dapl)
{
    hid_t d = -1;
    if (H5Lexists(c->file, name[0] == 'l' ? "layers" : "images", H5P_DEFAULT) > 0 &&
        H5Lexists(c->file, name, H5P_DEFAULT) > 0)
        d = H5Dopen2(c->file, name, dapl);
    if (d < 0) {
        H5Eclear2(H5E_DEFAULT);
        dhf_err_set("%s: dataset /%s is missing or unreadable", c->path, name);
    }
    return d;
}

/* Extent of dimension 0 of dataset d, -1 on error. */
static int64_t rows_of(hid_t d)
{
    hid_t s = H5Dget_space(d);
    hsize_t dims[8];
    int nd = s >= 0 ? H5Sget_simple_extent_dims(s, dims, NULL) : -1;
    if (s >= 0)
        H5Sclose(s);
    return nd >= 1 ? (int64_t)dims[0] : -1;
}

static int next_prime(int n)
{
    for (;; n++) {
        int p = 1;
        for (int d = 2; d * d <= n; d++)
            if (n % d == 0) {
                p = 0;
                break;
            }
        if (p && n > 1)
            return n;
    }
}

/* Opens the layer datasets (checking shape and type) and the index datasets,
 * then loads the index into memory. */
/* A map dataset must be stored as dhf writes it: chunked, one map [1, 1, C, H, W] per
 * chunk. HDF5 trusts a damaged file's other layouts (a compact one with a short buffer
 * made it copy past its own allocation, found by fuzzing), so no other is read. */
static int check_map_chunks(const dhf_feature_cache *c, hid_t d, const char *name,
                            const int64_t chw[3])
{
    hid_t dcpl = H5Dget_create_plist(d);
    hsize_t cd[8] = {0};
    bool ok = dcpl >= 0 && H5Pget_layout(dcpl) == H5D_CHUNKED &&
              H5Pget_chunk(dcpl, 8, cd) == 5 && cd[0] == 1 && cd[1] == 1 &&
              (int64_t)cd[2] == chw[0] && (int64_t)cd[3] == chw[1] && (int64_t)cd[4] == chw[2];
    if (dcpl >= 0)
        H5Pclose(dcpl);
    H5Eclear2(H5E_DEFAULT);
    if (!ok)
        return dhf_err_set("%s: dataset /%s: expected chunked storage, one map [1, 1, %lld, "
                           "%lld, %lld] per chunk", c->path, name, (long long)chw[0],
                           (long long)chw[1], (long long)chw[2]);
    return 0;
}

static int open_datasets(dhf_feature_cache *c, int chunk_cache_images)
{
    const dhf_cache_layout *l = &c->layout;
    for (int i = 0; i < l->num_layers; i++) {
        size_t chunk_bytes = dhf_cache_dtype_size(l->dtype) * (size_t)l->layer_chw[i][0] *
                             (size_t)l->layer_chw[i][1] * (size_t)l->layer_chw[i][2];
        hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
        if (c->writable) {
            /* Whole maps are written once: no cache, straight through the filters. */
            H5Pset_chunk_cache(dapl, 0, 0, 1.0);
        } else {
            int chunks = (chunk_cache_images < 1 ? 1 : chunk_cache_images) * l->num_steps;
            H5Pset_chunk_cache(dapl, (size_t)next_prime(100 * chunks),
                               (size_t)chunks * chunk_bytes + 1024, 1.0);
        }
        char name[64];
        c->layer[i] = open_dataset(c, layer_dset_name(name, sizeof name, i), dapl);
        H5Pclose(dapl);
        if (c->layer[i] < 0)
            return -1;
        hid_t s = H5Dget_space(c->layer[i]), t = H5Dget_type(c->layer[i]);
        hsize_t dims[8];
        int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
        if (nd == 5)
            H5Sget_simple_extent_dims(s, dims, NULL);
        bool type_ok = l->dtype == DHF_CACHE_F32
                           ? (t >= 0 && H5Tequal(t, H5T_IEEE_F32LE) > 0)
                           : (t >= 0 && dhf_h5_is_half_type(t));
        if (s >= 0)
            H5Sclose(s);
        if (t >= 0)
            H5Tclose(t);
        if (nd != 5 || (int64_t)dims[1] != l->num_steps ||
            (int64_t)dims[2] != l->layer_chw[i][0] || (int64_t)dims[3] != l->layer_chw[i][1] ||
            (int64_t)dims[4] != l->layer_chw[i][2])
            return dhf_err_set("%s: dataset /%s: expected shape [N, %d, %lld, %lld, %lld] "
                               "from the attributes", c->path, name, l->num_steps,
                               (long long)l->layer_chw[i][0], (long long)l->layer_chw[i][1],
                               (long long)l->layer_chw[i][2]);
        if (!type_ok)
            return dhf_err_set("%s: dataset /%s: element type is not %s as attribute "
                               "cache_dtype says", c->path, name,
                               dhf_cache_dtype_name(l->dtype));
        if (check_map_chunks(c, c->layer[i], name, l->layer_chw[i]) != 0)
            return -1;
    }
    if ((c->idx_key = open_dataset(c, "images/key", H5P_DEFAULT)) < 0 ||
        (c->idx_path = open_dataset(c, "images/path", H5P_DEFAULT)) < 0 ||
        (c->idx_width = open_dataset(c, "images/width", H5P_DEFAULT)) < 0 ||
        (c->idx_height = open_dataset(c, "images/height", H5P_DEFAULT)) < 0 ||
        (c->idx_status = open_dataset(c, "images/status", H5P_DEFAULT)) < 0)
        return -1;

    /* The status column is the last one a writer extends, so its length bounds the
     * rows that are fully described everywhere else. */
    int64_t n = rows_of(c->idx_status);
    hid_t others[] = {c->idx_key, c->idx_path, c->idx_width, c->idx_height};
    for (int i = 0; i < 4; i++)
        if (n < 0 || rows_of(others[i]) < n)
            return dhf_err_set("%s: the /images datasets have inconsistent lengths", c->path);
    if (c->writable) {
        /* Rows beyond the status column may be leftovers of a killed writer. */
        for (int i = 0; i < l->num_layers; i++)
            if (rows_of(c->layer[i]) < n)
                return dhf_err_set("%s: layer %d holds fewer rows than the index", c->path,
                                   i + 1);
    }
    if (dhf_cache__reserve_rows(c, n) != 0)
        return -1;
    c->n_images = n;
    if (n == 0)
        return rehash(c, 128);

    char *keys = malloc((size_t)n * DHF_CACHE_KEY_LEN);
    char *paths = malloc((size_t)n * DHF_CACHE_PATH_LEN);
    int32_t *w = malloc((size_t)n * sizeof *w), *h = malloc((size_t)n * sizeof *h);
    int rc = -1;
    if (!keys || !paths || !w || !h) {
        dhf_err_set("%s: out of memory reading the index of %lld images", c->path,
                    (long long)n);
        goto done;
    }
    hsize_t off[1] = {0}, cnt[1] = {(hsize_t)n};
    hid_t ms = H5Screate_simple(1, cnt, NULL);
    struct { hid_t d, t; void *buf; } cols[] = {
        {c->idx_key, c->key_type, keys},         {c->idx_path, c->path_type, paths},
        {c->idx_width, H5T_NATIVE_INT32, w},     {c->idx_height, H5T_NATIVE_INT32, h},
        {c->idx_status, H5T_NATIVE_UINT8, c->status}};
    for (int i = 0; i < 5; i++) {
        hid_t fs = H5Dget_space(cols[i].d);
        herr_t st = H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL);
        if (st >= 0)
            st = H5Dread(cols[i].d, cols[i].t, ms, fs, H5P_DEFAULT, cols[i].buf);
        if (st < 0)
            dhf_err_set("%s: cannot read the image index: %s", c->path, dhf_h5_error());
        H5Sclose(fs);
        if (st < 0) {
            H5Sclose(ms);
            goto done;
        }
    }
    H5Sclose(ms);
    c->n_committed = 0;
    for (int64_t r = 0; r < n; r++) {
        dhf_cache_image *im = &c->images[r];
        memcpy(im->key, keys + r * DHF_CACHE_KEY_LEN, DHF_CACHE_KEY_LEN);
        im->key[DHF_CACHE_KEY_LEN - 1] = '\0';
        memcpy(im->path, paths + r * DHF_CACHE_PATH_LEN, DHF_CACHE_PATH_LEN);
        im->path[DHF_CACHE_PATH_LEN - 1] = '\0';
        im->width = w[r];
        im->height = h[r];
        if (c->status[r] == DHF_CACHE_COMMITTED)
            c->n_committed++;
        else
            c->status[r] = DHF_CACHE_PENDING;
    }
    size_t slots = 128;
    while (slots < (size_t)n * 2)
        slots *= 2;
    if (rehash(c, slots) != 0)
        goto done;
    for (int64_t r = 0; r < n; r++)
        if (dhf_cache_find(c, c->images[r].key) != r) {
            dhf_err_set("%s: image key '%s' appears twice in the index", c->path,
                        c->images[r].key);
            goto done;
        }
    rc = 0;
done:
    free(keys);
    free(paths);
    free(w);
    free(h);
    return rc;
}

static int open_existing(dhf_feature_cache *c, bool writable, int chunk_cache_images)
{
    if (access(c->path, F_OK) != 0)
        return dhf_err_set("%s: no such file", c->path);
    if (access(c->path, writable ? R_OK | W_OK : R_OK) != 0)
        return dhf_err_set("%s: cannot open for %s: %s", c->path,
                           writable ? "writing" : "reading", strerror(errno));
    hid_t fapl = file_access_plist(writable);
    if (fapl < 0)
        return dhf_err_set("%s: %s", c->path, dhf_h5_error());
    if (writable) {
        /* Straight into SWMR mode: the superblock never says "open for writing"
         * without also saying "SWMR", which SWMR readers accept (a plain RDWR open
         * followed by H5Fstart_swmr_write leaves a window where a kill makes the
         * file unreadable until the next writer). */
        c->file = H5Fopen(c->path, H5F_ACC_RDWR | H5F_ACC_SWMR_WRITE, fapl);
        if (c->file < 0) {
            /* (Any further HDF5 call clears the error stack: read it now.) */
            char why[512];
            snprintf(why, sizeof why, "%s", dhf_h5_error());
            H5Pclose(fapl);
            return dhf_err_set("%s: cannot open for writing (%s); is it a dhf feature cache?",
                               c->path, why);
        }
    } else {
        c->file = H5Fopen(c->path, H5F_ACC_RDONLY, fapl);
        if (c->file < 0) {
            /* Killed or still-running SWMR writers leave the file marked as open for
             * writing; SWMR read mode accepts such a file. */
            char first[512];
            snprintf(first, sizeof first, "%s", dhf_h5_error());
            /* only then: SWMR reads retry damaged metadata with growing sleeps, which
             * on a corrupt file means minutes; a bounded number of attempts besides */
            if (strstr(first, "already open for write"))
                H5Pset_metadata_read_attempts(fapl, 8);
            c->file = strstr(first, "already open for write")
                          ? H5Fopen(c->path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl)
                          : -1;
            if (c->file < 0) {
                H5Eclear2(H5E_DEFAULT);
                H5Pclose(fapl);
                return dhf_err_set("%s: not a readable HDF5 file (%s)", c->path, first);
            }
        }
    }
    H5Pclose(fapl);
    if (c->file < 0)
        return dhf_err_set("%s: not a readable HDF5 file (%s)", c->path, dhf_h5_error());
    if (make_types(c) != 0 || read_layout(c) != 0 || open_datasets(c, chunk_cache_images) != 0)
        return -1;
    return 0;
}

int dhf_cache_open_read(const char *path, int chunk_cache_images, dhf_feature_cache **out)
{
    dhf_h5_quiet();
    dhf_feature_cache *c = handle_new(path);
    if (!c)
        return -1;
    if (open_existing(c, false, chunk_cache_images) != 0) {
        handle_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* ---- creating -------------------------------------------------------------- */

static int write_root_attrs(dhf_feature_cache *c, const dhf_cache_layout *l)
{
    int64_t version = DHF_CACHE_SCHEMA_VERSION, comp = l->compression;
    int64_t shapes[DHF_CACHE_MAX_LAYERS * 3];
    for (int i = 0; i < l->num_layers; i++)
        for (int d = 0; d < 3; d++)
            shapes[3 * i + d] = l->layer_chw[i][d];
    hid_t f = c->file;
    if (dhf_h5_attr_write_str(f, "dhf_kind", DHF_CACHE_KIND) != 0 ||
        dhf_h5_attr_write_i64(f, "dhf_schema_version", &version, 1, 0) != 0 ||
        dhf_h5_attr_write_str(f, "model_name", l->model_name) != 0 ||
        dhf_h5_attr_write_str(f, "model_hash", l->model_hash) != 0 ||
        dhf_h5_attr_write_str(f, "config_json", l->config_json) != 0 ||
        dhf_h5_attr_write_str(f, "identity_json", l->identity_json) != 0 ||
        dhf_h5_attr_write_str(f, "cache_dtype", dhf_cache_dtype_name(l->dtype)) != 0 ||
        dhf_h5_attr_write_i64(f, "compression", &comp, 1, 0) != 0 ||
        dhf_h5_attr_write_f64(f, "unet_timesteps", l->unet_timestep, l->num_steps) != 0 ||
        dhf_h5_attr_write_i64(f, "save_timestep", l->save_label, l->num_steps, 0) != 0 ||
        dhf_h5_attr_write_str_array(f, "layer_names", &l->layer_name[0][0],
                                    DHF_CACHE_NAME_LEN, l->num_layers) != 0 ||
        dhf_h5_attr_write_i64(f, "layer_shapes", shapes, l->num_layers, 3) != 0)
        return dhf_err_wrap("%s", c->path);
    return 0;
}

/* An empty extendible dataset [0, rest...] with the given chunk shape; deflate_level
 * > 0 adds shuffle + deflate; every chunk carries a Fletcher-32 checksum. */
static hid_t create_extendible(dhf_feature_cache *c, const char *name, hid_t type, int ndim,
                               const hsize_t *rest, const hsize_t *chunk, int deflate_level)
{
    hsize_t dims[5] = {0}, maxdims[5] = {H5S_UNLIMITED};
    for (int i = 1; i < ndim; i++)
        dims[i] = maxdims[i] = rest[i - 1];
    hid_t space = H5Screate_simple(ndim, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = -1;
    /* Fletcher-32 on every chunk (last, so it covers the stored bytes): a damaged map
     * fails to read, naming image, step and layer, instead of returning wrong numbers */
    if (space >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, ndim, chunk) >= 0 &&
        H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0 &&
        (deflate_level <= 0 ||
         (H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, (unsigned)deflate_level) >= 0)) &&
        H5Pset_fletcher32(dcpl) >= 0)
        d = H5Dcreate2(c->file, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0)
        dhf_err_set("%s: cannot create dataset /%s: %s", c->path, name, dhf_h5_error());
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    return d;
}

static int create_file(dhf_feature_cache *c, const dhf_cache_layout *l)
{
    hid_t fapl = file_access_plist(false);
    c->file = fapl >= 0 ? H5Fcreate(c->path, H5F_ACC_EXCL, H5P_DEFAULT, fapl) : -1;
    if (fapl >= 0)
        H5Pclose(fapl);
    if (c->file < 0)
        return dhf_err_set("%s: cannot create: %s", c->path, dhf_h5_error());
    if (make_types(c) != 0 || write_root_attrs(c, l) != 0)
        return -1;
    hid_t g1 = H5Gcreate2(c->file, "images", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g2 = H5Gcreate2(c->file, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g1 >= 0)
        H5Gclose(g1);
    if (g2 >= 0)
        H5Gclose(g2);
    if (g1 < 0 || g2 < 0)
        return dhf_err_set("%s: cannot create groups: %s", c->path, dhf_h5_error());
    /* Strings compress ~10x; the cost is negligible next to the features. */
    const hsize_t idx_chunk[1] = {DHF_CACHE_INDEX_CHUNK};
    if ((c->idx_key = create_extendible(c, "images/key", c->key_type, 1, NULL, idx_chunk,
                                        4)) < 0 ||
        (c->idx_path = create_extendible(c, "images/path", c->path_type, 1, NULL, idx_chunk,
                                         4)) < 0 ||
        (c->idx_width = create_extendible(c, "images/width", H5T_STD_I32LE, 1, NULL,
                                          idx_chunk, 0)) < 0 ||
        (c->idx_height = create_extendible(c, "images/height", H5T_STD_I32LE, 1, NULL,
                                           idx_chunk, 0)) < 0 ||
        (c->idx_status = create_extendible(c, "images/status", H5T_STD_U8LE, 1, NULL,
                                           idx_chunk, 0)) < 0)
        return -1;
    hid_t ftype = l->dtype == DHF_CACHE_F32 ? H5T_IEEE_F32LE : c->half_type;
    for (int i = 0; i < l->num_layers; i++) {
        const int64_t *chw = l->layer_chw[i];
        hsize_t rest[4] = {(hsize_t)l->num_steps, (hsize_t)chw[0], (hsize_t)chw[1],
                           (hsize_t)chw[2]};
        hsize_t chunk[5] = {1, 1, (hsize_t)chw[0], (hsize_t)chw[1], (hsize_t)chw[2]};
        char name[64];
        layer_dset_name(name, sizeof name, i);
        if ((c->layer[i] = create_extendible(c, name, ftype, 5, rest, chunk,
                                             l->compression)) < 0)
            return -1;
        /* The module name on each dataset keeps it self-describing for h5py users. */
        if (dhf_h5_attr_write_str(c->layer[i], "module", l->layer_name[i]) != 0)
            return dhf_err_wrap("%s: /%s", c->path, name);
    }
    c->layout = *l;
    if (!(c->config_json = strdup(l->config_json)) ||
        !(c->identity_json = strdup(l->identity_json)))
        return dhf_err_set("%s: out of memory", c->path);
    c->layout.config_json = c->config_json;
    c->layout.identity_json = c->identity_json;
    c->n_images = 0;
    return rehash(c, 128);
}

static int take_lock(dhf_feature_cache *c)
{
    snprintf(c->lock_path, sizeof c->lock_path, "%s.lock", c->path);
    c->lock_fd = open(c->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (c->lock_fd < 0)
        return dhf_err_set("%s: cannot create lock file %s: %s", c->path, c->lock_path,
                           strerror(errno));
    if (flock(c->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(c->lock_fd);
        c->lock_fd = -1;
        if (e == EWOULDBLOCK)
            return dhf_err_set("%s: another process is writing this cache (lock %s is "
                               "held)", c->path, c->lock_path);
        return dhf_err_set("%s: cannot lock %s: %s", c->path, c->lock_path, strerror(e));
    }
    return 0;
}

/* Builds the complete, empty file under a temporary name and renames it into place,
 * so a kill during creation never leaves a half-made cache at `path`. */
static int create_complete(const char *path, const dhf_cache_layout *layout)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    unlink(tmp);
    dhf_feature_cache *c = handle_new(tmp);
    if (!c)
        return -1;
    int rc = create_file(c, layout);
    if (rc == 0 && H5Fflush(c->file, H5F_SCOPE_GLOBAL) < 0)
        rc = dhf_err_set("%s: flush failed: %s", tmp, dhf_h5_error());
    if (handle_free(c) != 0)
        rc = -1;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = dhf_err_set("%s: cannot rename %s into place: %s", path, tmp, strerror(errno));
    if (rc != 0)
        unlink(tmp);
    return rc;
}

int dhf_cache_open_write(const char *path, const dhf_cache_layout *layout,
                         dhf_feature_cache **out)
{
    dhf_h5_quiet();
    if (validate_layout(layout) != 0)
        return dhf_err_wrap("%s", path);
    dhf_feature_cache *c = handle_new(path);
    if (!c)
        return -1;
    c->writable = true;
    if (take_lock(c) != 0)
        goto fail;
    if (access(path, F_OK) != 0 && create_complete(path, layout) != 0)
        goto fail;
    if (open_existing(c, true, 0) != 0)
        goto fail;
    if (dhf_cache_layout_check_same(&c->layout, path, layout, "this extraction") != 0)
        goto fail;
    *out = c;
    return 0;
fail:
    c->writable = false;   /* no final flush of a file we could not set up */
    handle_free(c);
    return -1;
}

/* ---- getters ----------------------------------------------------------------- */

const char *dhf_cache_path(const dhf_feature_cache *c) { return c->path; }
const dhf_cache_layout *dhf_cache_get_layout(const dhf_feature_cache *c) { return &c->layout; }
int dhf_cache_num_steps(const dhf_feature_cache *c) { return c->layout.num_steps; }
int dhf_cache_num_layers(const dhf_feature_cache *c) { return c->layout.num_layers; }
int64_t dhf_cache_num_images(const dhf_feature_cache *c) { return c->n_images; }
int64_t dhf_cache_num_committed(const dhf_feature_cache *c) { return c->n_committed; }

int dhf_cache_layer_shape(const dhf_feature_cache *c, int layer, int64_t chw[3])
{
    if (layer < 0 || layer >= c->layout.num_layers)
        return dhf_err_set("%s: layer %d out of range (the cache has layers 1..%d)", c->path,
                           layer + 1, c->layout.num_layers);
    for (int d = 0; d < 3; d++)
        chw[d] = c->layout.layer_chw[layer][d];
    return 0;
}

size_t dhf_cache_map_numel(const dhf_feature_cache *c, int layer)
{
    if (layer < 0 || layer >= c->layout.num_layers)
        return 0;
    const int64_t *chw = c->layout.layer_chw[layer];
    return (size_t)chw[0] * (size_t)chw[1] * (size_t)chw[2];
}

const dhf_cache_image *dhf_cache_image_at(const dhf_feature_cache *c, int64_t row)
{
    return row >= 0 && row < c->n_images ? &c->images[row] : NULL;
}

bool dhf_cache_is_committed(const dhf_feature_cache *c, int64_t row)
{
    return row >= 0 && row < c->n_images && c->status[row] == DHF_CACHE_COMMITTED;
}

int dhf_cache_lookup(const dhf_feature_cache *c, const char *key, int64_t *row)
{
    int64_t r = dhf_cache_find(c, key);
    if (r < 0)
        return dhf_err_set("%s: image '%s' is not in the cache", c->path, key);
    if (!dhf_cache_is_committed(c, r))
        return dhf_err_set("%s: image '%s' is not finished (extraction interrupted? re-run "
                           "dhf extract)", c->path, key);
    *row = r;
    return 0;
}

int dhf_cache_get_stats(const dhf_feature_cache *c, dhf_cache_stats *st)
{
    memset(st, 0, sizeof *st);
    const dhf_cache_layout *l = &c->layout;
    double logical_written = 0;
    for (int i = 0; i < l->num_layers; i++) {
        int64_t map = (int64_t)dhf_cache_map_numel(c, i);
        st->values_per_image += map * l->num_steps;
        hsize_t nchunks = 0;
        hid_t s = H5Dget_space(c->layer[i]);
        if (s < 0 || H5Dget_num_chunks(c->layer[i], s, &nchunks) < 0) {
            if (s >= 0)
                H5Sclose(s);
            return dhf_err_set("%s: layer %d: cannot count chunks: %s", c->path, i + 1,
                               dhf_h5_error());
        }
        H5Sclose(s);
        st->stored_maps += (int64_t)nchunks;
        st->stored_bytes += (int64_t)H5Dget_storage_size(c->layer[i]);
        logical_written += (double)nchunks * (double)map * (double)dhf_cache_dtype_size(l->dtype);
    }
    st->bytes_per_image = st->values_per_image * (int64_t)dhf_cache_dtype_size(l->dtype);
    st->compression_ratio = st->stored_bytes > 0 ? logical_written / (double)st->stored_bytes
                                                 : NAN;
    hsize_t fsize = 0;
    if (H5Fget_filesize(c->file, &fsize) >= 0)
        st->file_bytes = (int64_t)fsize;
    return 0;
}
