/* test_vit_parity.c — the DINO / DINOv2 ViT against the official code
 * (fixtures/vit/MANIFEST.md): for every model folder, the .pth and .safetensors
 * copies hold the same tensors and give identical features; for every image of the
 * model's reference file, the LANCZOS preprocessing byte for byte (resized_u8), the
 * normalised input, the token grid, the interpolated position embedding, the tokens
 * entering the blocks and leaving blocks 0 and 1 (where stored), and the features
 * (DINO keys of blocks[meta/layer] at every stored stride; DINOv2 tokens and
 * tokens_norm), from the stored input and end to end from the PNG; and every
 * position-embedding unit case of refs/posembed.safetensors (the register models'
 * antialiased cases excepted: dhf refuses those models). Tolerances from
 * tolerances.json. Everything is read from the files (sizes, layer, strides, images),
 * so any model folder of the same schema works.
 * Usage: test_vit_parity [FIXTURE_ROOT [MODEL_NAME ...]]
 * dhf-test: label=parity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parity.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/image.h"
#include "core/safetensors.h"
#include "extract/pt_weights.h"
#include "extract/vit.h"

#define DEFAULT_ROOT "../shared/fixtures/vit"

static char g_root[4096];
static const char *g_models[64];
static int g_n_models;
static dhf_tolerances *g_tol;
static int g_failures;

static int64_t ref_i64(const dhf_st_file *f, const char *name, int i)
{
    const dhf_st_info *info = NULL;
    if (dhf_st_get(f, name, &info) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(info->dtype, DHF_ST_I64);
    assert_true(i < info->numel);
    int64_t v;
    memcpy(&v, (const char *)info->data + (size_t)i * 8, 8);
    return v;
}

/* images/<prefix>_*.png for "img0" etc. */
static bool image_path(const char *prefix, char *out, size_t n)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%.4080s/images", g_root);
    DIR *d = opendir(dir);
    if (!d)
        return false;
    struct dirent *e;
    bool found = false;
    size_t pl = strlen(prefix);
    while ((e = readdir(d)) && !found)
        if (strncmp(e->d_name, prefix, pl) == 0 && e->d_name[pl] == '_') {
            snprintf(out, n, "%.4000s/%.255s", dir, e->d_name);
            found = true;
        }
    closedir(d);
    return found;
}

static void check(dhf_parity_report *r, dhf_tensor cand, const dhf_st_file *ref, const char *name)
{
    int rc = dhf_parity_check(r, cand, ref, name, name);
    if (rc != 0) {
        g_failures++;
        print_message("  FAIL %s%s%s\n", name, rc < 0 ? ": " : "", rc < 0 ? dhf_err_msg() : "");
    }
}

static void check_grid(const dhf_st_file *ref, const char *name, int gh, int gw)
{
    int64_t h = ref_i64(ref, name, 0), w = ref_i64(ref, name, 1);
    if (h != gh || w != gw) {
        g_failures++;
        print_message("  FAIL %s: grid %dx%d, reference %lldx%lld\n", name, gh, gw, (long long)h,
                      (long long)w);
    }
}

/* Two weights files with the same tensors: names, order, shapes, bytes. */
static void same_weights(const char *pth, const char *st_path)
{
    dhf_st_file *a = NULL, *b = NULL;
    if (dhf_pt_weights_open(pth, &a) != 0 || dhf_st_open(st_path, &b) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_st_count(a), dhf_st_count(b));
    for (int i = 0; i < dhf_st_count(a); i++) {
        const dhf_st_info *x = dhf_st_at(a, i), *y = dhf_st_find(b, x->name);
        if (!y)
            fail_msg("%s: '%s' is not in %s", pth, x->name, st_path);
        assert_int_equal(x->ndim, y->ndim);
        for (int k = 0; k < x->ndim; k++)
            assert_int_equal(x->shape[k], y->shape[k]);
        assert_int_equal(x->dtype, y->dtype);
        assert_int_equal(x->nbytes, y->nbytes);
        if (memcmp(x->data, y->data, x->nbytes) != 0)
            fail_msg("'%s' differs between %s and %s", x->name, pth, st_path);
    }
    dhf_st_close(a);
    dhf_st_close(b);
}

/* the stored [1, 3, H, W] input of an image as a tensor */
static dhf_tensor stored_input(const dhf_st_file *ref, const char *img)
{
    char name[128];
    snprintf(name, sizeof name, "%s/input", img);
    const dhf_st_info *info = NULL;
    if (dhf_st_get(ref, name, &info) != 0)
        fail_msg("%s", dhf_err_msg());
    float *buf = malloc((size_t)info->numel * sizeof *buf);
    assert_int_equal(dhf_st_read_f32(ref, name, buf, (size_t)info->numel), 0);
    dhf_tensor t = NULL;
    assert_int_equal(dhf_from_buffer(buf, DHF_F32, info->shape, info->ndim, &t), DHF_OK);
    free(buf);
    return t;
}

/* PNG -> resized_u8 (exact) -> input (tolerance); returns our input tensor. */
static dhf_tensor check_preprocess(dhf_parity_report *r, const dhf_st_file *ref,
                                   const dhf_vit_config *c, const char *img)
{
    char png[4400], name[128];
    if (!image_path(img, png, sizeof png))
        fail_msg("no %s/images/%s_*.png", g_root, img);
    snprintf(name, sizeof name, "%s/load_size", img);
    int load = (int)ref_i64(ref, name, 0);
    dhf_image src, resized;
    float *input = NULL;
    if (dhf_image_load(png, &src) != 0 ||
        dhf_vit_preprocess(&src, c->family, c->patch_size, load, &resized, &input) != 0)
        fail_msg("%s", dhf_err_msg());
    snprintf(name, sizeof name, "%s/resized_u8", img);
    const dhf_st_info *u8 = dhf_st_find(ref, name);
    assert_non_null(u8);
    assert_int_equal(u8->ndim, 3);
    if (u8->shape[0] != resized.height || u8->shape[1] != resized.width) {
        g_failures++;
        print_message("  FAIL %s: %dx%d, reference %lldx%lld (WxH)\n", name, resized.width,
                      resized.height, (long long)u8->shape[1], (long long)u8->shape[0]);
    } else {
        size_t n = (size_t)resized.width * resized.height * 3, bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += resized.rgb[i] != ((const uint8_t *)u8->data)[i];
        if (bad) {
            g_failures++;
            print_message("  FAIL %s: %zu of %zu bytes differ\n", name, bad, n);
        }
    }
    int64_t shape[4] = {1, 3, resized.height, resized.width};
    dhf_tensor t = NULL;
    assert_int_equal(dhf_from_buffer(input, DHF_F32, shape, 4, &t), DHF_OK);
    snprintf(name, sizeof name, "%s/input", img);
    check(r, t, ref, name);
    free(input);
    dhf_image_free(&src);
    dhf_image_free(&resized);
    return t;
}

static void check_debug(dhf_parity_report *r, const dhf_st_file *ref, const char *prefix,
                        dhf_vit_debug *d)
{
    struct {
        const char *leaf;
        dhf_tensor t;
    } items[] = {{"pos_embed", d->pos_embed}, {"tokens_in", d->tokens_in},
                 {"block00", d->block00}, {"block01", d->block01}};
    for (size_t i = 0; i < sizeof items / sizeof items[0]; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s/dbg/%s", prefix, items[i].leaf);
        if (dhf_st_find(ref, name)) {
            assert_non_null(items[i].t);
            check(r, items[i].t, ref, name);
        }
        dhf_free(items[i].t);
    }
}

static double max_abs_diff(dhf_tensor a, dhf_tensor b)
{
    double m = -1;
    assert_int_equal(dhf_max_abs_diff(a, b, &m), DHF_OK);
    return m;
}

static void run_model(const char *model)
{
    char dir[4200], cfg_path[4400], pth[4400], st[4400];
    snprintf(dir, sizeof dir, "%s/models/%s", g_root, model);
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    snprintf(pth, sizeof pth, "%s/model.pth", dir);
    snprintf(st, sizeof st, "%s/model.safetensors", dir);
    dhf_vit_config c;
    if (dhf_vit_config_load(cfg_path, &c) != 0)
        fail_msg("%s", dhf_err_msg());
    bool have_pth = dhf_path_exists(pth), have_st = dhf_path_exists(st);
    assert_true(have_pth || have_st);
    if (have_pth && have_st)
        same_weights(pth, st);
    dhf_vit *v = NULL, *v2 = NULL;
    if (dhf_vit_load(&c, have_st ? st : pth, &v) != 0 ||
        (have_pth && have_st && dhf_vit_load(&c, pth, &v2) != 0))
        fail_msg("%s", dhf_err_msg());

    bool dino = c.family == DHF_VIT_DINO;
    char ref_path[4400];
    snprintf(ref_path, sizeof ref_path, "%s/refs/%s/%s.safetensors", g_root, model,
             dino ? "dino_keys" : "dinov2_tokens");
    dhf_st_file *ref = NULL;
    if (dhf_st_open(ref_path, &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_parity_report rep;
    dhf_parity_init(&rep, g_tol, dino ? "dino_keys" : "dinov2_tokens");
    int layer = (int)ref_i64(ref, "meta/layer", 0);
    int n_strides = 1, strides[8] = {c.patch_size};
    if (dino) {
        const dhf_st_info *si = dhf_st_find(ref, "meta/strides");
        assert_non_null(si);
        n_strides = (int)si->numel;
        assert_true(n_strides <= 8);
        for (int i = 0; i < n_strides; i++)
            strides[i] = (int)ref_i64(ref, "meta/strides", i);
    }
    int images = 0;
    for (int k = 0;; k++) {
        char img[32], name[160];
        snprintf(img, sizeof img, "img%d", k);
        snprintf(name, sizeof name, "%s/load_size", img);
        if (!dhf_st_find(ref, name))
            break;
        images++;
        dhf_tensor ours = check_preprocess(&rep, ref, &c, img);
        dhf_tensor in = stored_input(ref, img);
        int64_t shape[4];
        int nd = 0;
        assert_int_equal(dhf_shape(in, shape, &nd), DHF_OK);
        for (int s = 0; s < n_strides; s++) {
            char prefix[64];
            if (dino)
                snprintf(prefix, sizeof prefix, "%s/s%d", img, strides[s]);
            else
                snprintf(prefix, sizeof prefix, "%s", img);
            int gh, gw;
            dhf_vit_grid(&c, strides[s], (int)shape[2], (int)shape[3], &gh, &gw);
            snprintf(name, sizeof name, "%s/grid", prefix);
            check_grid(ref, name, gh, gw);
            dhf_vit_opts o = {.layer = layer, .stride = strides[s], .keys = dino};
            dhf_vit_debug dbg = {0};
            dhf_tensor f = NULL, fe = NULL, f2 = NULL;
            if (dhf_vit_features(v, in, &o, &f, &dbg) != 0 ||
                dhf_vit_features(v, ours, &o, &fe, NULL) != 0)
                fail_msg("%s: %s", prefix, dhf_err_msg());
            snprintf(name, sizeof name, "%s/%s", prefix, dino ? "keys" : "tokens");
            check(&rep, f, ref, name);       /* from the stored input */
            check(&rep, fe, ref, name);      /* end to end from the PNG */
            check_debug(&rep, ref, prefix, &dbg);
            if (v2) {   /* the .pth copy: the very same features */
                if (dhf_vit_features(v2, in, &o, &f2, NULL) != 0)
                    fail_msg("%s", dhf_err_msg());
                assert_true(max_abs_diff(f, f2) == 0);
                dhf_free(f2);
            }
            if (!dino) {
                dhf_tensor fn = NULL;
                o.final_norm = true;
                if (dhf_vit_features(v, in, &o, &fn, NULL) != 0)
                    fail_msg("%s", dhf_err_msg());
                snprintf(name, sizeof name, "%s/tokens_norm", prefix);
                check(&rep, fn, ref, name);
                dhf_free(fn);
            }
            dhf_free(f);
            dhf_free(fe);
        }
        dhf_free(in);
        dhf_free(ours);
    }
    assert_true(images > 0);
    print_message("%s (%s, %d blocks, C %d, %d heads; layer %d; %d image(s)): %d tensors, %d "
                  "failed\n", model, dino ? "dino" : "dinov2", c.depth, c.embed_dim, c.num_heads,
                  layer, images, rep.n_checked, rep.n_fail);
    dhf_parity_print(&rep, stdout);
    dhf_st_close(ref);
    dhf_vit_free(v);
    dhf_vit_free(v2);
}

static void test_models(void **state)
{
    (void)state;
    g_failures = 0;
    for (int i = 0; i < g_n_models; i++)
        run_model(g_models[i]);
    assert_int_equal(g_failures, 0);
}

static void test_posembed_cases(void **state)
{
    (void)state;
    char path[4400];
    snprintf(path, sizeof path, "%s/refs/posembed.safetensors", g_root);
    if (!dhf_path_exists(path))
        skip();
    dhf_st_file *ref = NULL;
    if (dhf_st_open(path, &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    cJSON *cases = cJSON_Parse(dhf_st_metadata_get(ref, "cases"));
    assert_true(cJSON_IsArray(cases));
    g_failures = 0;
    dhf_parity_report rep;
    dhf_parity_init(&rep, g_tol, "posembed");
    int run = 0, skipped = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases)
    {
        const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
        const char *src = cJSON_GetObjectItem(cs, "source")->valuestring;
        const char *fn = cJSON_GetObjectItem(cs, "function")->valuestring;
        /* the register models' settings (offset 0, antialiased): dhf refuses those models */
        if (strncmp(name, "dinov2_reg/", 11) == 0 || strstr(fn, "register")) {
            skipped++;
            continue;
        }
        int H = cJSON_GetObjectItem(cs, "H")->valueint, W = cJSON_GetObjectItem(cs, "W")->valueint;
        const cJSON *grid = cJSON_GetObjectItem(cs, "grid");
        int gh = cJSON_GetArrayItem(grid, 0)->valueint, gw = cJSON_GetArrayItem(grid, 1)->valueint;
        const dhf_st_info *si = dhf_st_find(ref, src);
        assert_non_null(si);
        int C = (int)si->shape[2], N = (int)si->shape[1] - 1, M = (int)lround(sqrt(N));
        assert_int_equal(M * M, N);
        float *pos = malloc((size_t)si->numel * sizeof *pos);
        float *out = malloc((size_t)(1 + gh * gw) * (size_t)C * sizeof *out);
        assert_int_equal(dhf_st_read_f32(ref, src, pos, (size_t)si->numel), 0);
        dhf_vit_interpolate_pos(pos, M, C, gh, gw, H, W, 0.1, out);
        int64_t shape[3] = {1, 1 + (int64_t)gh * gw, C};
        dhf_tensor t = NULL;
        assert_int_equal(dhf_from_buffer(out, DHF_F32, shape, 3, &t), DHF_OK);
        check(&rep, t, ref, name);
        dhf_free(t);
        free(pos);
        free(out);
        run++;
    }
    print_message("posembed: %d cases checked, %d register-model cases skipped\n", run, skipped);
    dhf_parity_print(&rep, stdout);
    cJSON_Delete(cases);
    dhf_st_close(ref);
    assert_true(run > 0);
    assert_int_equal(g_failures, 0);
}

/* The mistakes of MANIFEST section 7 that a port could make here must be visible: the
 * stored keys of blocks[layer] differ from those of blocks[layer - 1]. */
static void test_layer_index_matters(void **state)
{
    (void)state;
    for (int i = 0; i < g_n_models; i++) {
        char dir[4200], cfg_path[4400], st[4400], ref_path[4400];
        snprintf(dir, sizeof dir, "%s/models/%s", g_root, g_models[i]);
        snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
        snprintf(st, sizeof st, "%s/model.safetensors", dir);
        dhf_vit_config c;
        if (dhf_vit_config_load(cfg_path, &c) != 0 || !dhf_path_exists(st))
            continue;
        bool dino = c.family == DHF_VIT_DINO;
        snprintf(ref_path, sizeof ref_path, "%s/refs/%s/%s.safetensors", g_root, g_models[i],
                 dino ? "dino_keys" : "dinov2_tokens");
        dhf_st_file *ref = NULL;
        dhf_vit *v = NULL;
        if (dhf_st_open(ref_path, &ref) != 0 || dhf_vit_load(&c, st, &v) != 0)
            fail_msg("%s", dhf_err_msg());
        int layer = (int)ref_i64(ref, "meta/layer", 0);
        dhf_tensor in = stored_input(ref, "img0"), f = NULL;
        dhf_vit_opts o = {.layer = layer - 1, .stride = c.patch_size, .keys = dino};
        assert_int_equal(dhf_vit_features(v, in, &o, &f, NULL), 0);
        dhf_parity_report rep;
        dhf_parity_init(&rep, g_tol, dino ? "dino_keys" : "dinov2_tokens");
        char name[64];
        snprintf(name, sizeof name, dino ? "img0/s%d/keys" : "img0/tokens", c.patch_size);
        assert_int_equal(dhf_parity_check(&rep, f, ref, name, name), 1);
        /* and a layer past the last block is an error naming the range */
        o.layer = c.depth;
        dhf_tensor g = NULL;
        assert_int_equal(dhf_vit_features(v, in, &o, &g, NULL), -1);
        assert_non_null(strstr(dhf_err_msg(), "outside its blocks"));
        dhf_free(f);
        dhf_free(in);
        dhf_vit_free(v);
        dhf_st_close(ref);
    }
}

int main(int argc, char **argv)
{
    snprintf(g_root, sizeof g_root, "%s", argc > 1 ? argv[1] : DEFAULT_ROOT);
    if (!dhf_is_dir(g_root)) {
        if (argc > 1) {
            fprintf(stderr, "%s: no such folder\n", g_root);
            return 1;
        }
        fprintf(stderr, "%s: %s is absent: skipping\n", argv[0], g_root);
        return 77;
    }
    static char names[64][128];
    if (argc > 2) {
        for (int i = 2; i < argc && g_n_models < 64; i++)
            g_models[g_n_models++] = argv[i];
    } else {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/models", g_root);
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d)) && g_n_models < 64)
            if (e->d_name[0] != '.') {
                snprintf(names[g_n_models], sizeof names[0], "%.127s", e->d_name);
                g_models[g_n_models] = names[g_n_models];
                g_n_models++;
            }
        if (d)
            closedir(d);
    }
    char tol[4400];
    snprintf(tol, sizeof tol, "%s/tolerances.json", g_root);
    if (dhf_tolerances_load(tol, &g_tol) != 0) {
        fprintf(stderr, "%s\n", dhf_err_msg());
        return 1;
    }
    dhf_set_num_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posembed_cases),
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_layer_index_matters),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dhf_tolerances_free(g_tol);
    return rc;
}
