/* test_generation_parity.c — generation mode against the paper's code
 * (fixtures/gen/MANIFEST.md), for every reference file present in REF_DIR:
 *   vae_decode   the VAE decoder from in/z (post_quant_conv, conv_in, mid block, every
 *                up block, the image) and the pipeline's 8-bit conversion (the
 *                reference image and the probe exactly; ours within the u8 rule);
 *   gen_*        the sampler from the stored x_T and embeddings (eps, both passes,
 *                every latent and x0 prediction, the final latent, the conditional
 *                pass's features of every saved label, the aggregation-network input
 *                in the flipped slot order, the decoded image), then end to end from
 *                the prompt (tokenizer ids equal, CLIP embeddings, the whole run again).
 * Tolerances from REF_DIR/../../tolerances.json.
 * Usage: test_generation_parity [MODEL_DIR TEXT_ENCODER_DIR TOKENIZER_DIR REF_DIR]
 * dhf-test: label=parity */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/parity.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/safetensors.h"
#include "core/torch/st_tensor.h"
#include "extract/clip_text.h"
#include "extract/clip_tokenizer.h"
#include "extract/generation.h"
#include "extract/nn_layers.h"
#include "extract/unet.h"
#include "extract/vae.h"

static char g_model[4096] = "../shared/fixtures/sd/models/tiny-sd15";
static char g_te[4096] = "../shared/fixtures/clip/sd15_tiny/text_encoder";
static char g_tok[4096] = "../shared/fixtures/gen/tokenizer/sd15";
static char g_ref[4096] = "../shared/fixtures/gen/refs/tiny-sd15";
static dhf_tolerances *g_tol;
static int g_fail;

static dhf_tensor ref_tensor(const dhf_st_file *f, const char *name)
{
    dhf_tensor t = NULL;
    if (dhf_st_load(f, name, &t) != 0)
        fail_msg("%s", dhf_err_msg());
    return t;
}

static void check(dhf_parity_report *r, dhf_tensor cand, const dhf_st_file *ref, const char *name)
{
    int rc = dhf_parity_check(r, cand, ref, name, name);
    if (rc != 0) {
        g_fail++;
        print_message("  FAIL %s%s%s\n", name, rc < 0 ? ": " : "", rc < 0 ? dhf_err_msg() : "");
    }
}

/* the u8 rule: |diff| <= 1 everywhere, at most 0.1% of the values differing */
static void check_u8_rule(const uint8_t *a, const dhf_st_file *ref, const char *name)
{
    const dhf_st_info *info = dhf_st_find(ref, name);
    assert_non_null(info);
    const uint8_t *b = info->data;
    size_t n = (size_t)info->numel, differ = 0;
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        differ += d != 0;
        if (d > worst)
            worst = d;
    }
    print_message("  %s: %zu of %zu values differ (max %d)\n", name, differ, n, worst);
    if (worst > 1 || (double)differ > 0.001 * (double)n) {
        g_fail++;
        print_message("  FAIL %s: u8 rule\n", name);
    }
}

/* the u8 rule applied to a stored float image must give the stored bytes exactly */
static void check_u8_exact(const dhf_st_file *ref, const char *fname, const char *uname, bool nchw)
{
    const dhf_st_info *fi = dhf_st_find(ref, fname), *ui = dhf_st_find(ref, uname);
    assert_non_null(fi);
    assert_non_null(ui);
    size_t n = (size_t)fi->numel;
    float *x = malloc(n * sizeof *x);
    uint8_t *u = malloc(n);
    assert_int_equal(dhf_st_read_f32(ref, fname, x, n), 0);
    if (nchw)
        dhf_vae_image_to_u8(x, (int)fi->shape[0], (int)fi->shape[1], (int)fi->shape[2],
                            (int)fi->shape[3], u);
    else   /* a flat probe: treated as one 1 x 1 x 1 x n image */
        dhf_vae_image_to_u8(x, 1, 1, 1, (int)n, u);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += u[i] != ((const uint8_t *)ui->data)[i];
    if (bad) {
        g_fail++;
        print_message("  FAIL %s -> %s: %zu of %zu bytes differ\n", fname, uname, bad, n);
    }
    free(x);
    free(u);
}

static uint8_t *to_u8(dhf_tensor image, size_t *n)
{
    int64_t s[4];
    int nd = 0;
    assert_int_equal(dhf_shape(image, s, &nd), DHF_OK);
    *n = (size_t)(s[0] * s[1] * s[2] * s[3]);
    float *x = malloc(*n * sizeof *x);
    uint8_t *u = malloc(*n);
    assert_int_equal(dhf_to_buffer(image, DHF_F32, x, *n * sizeof *x), DHF_OK);
    dhf_vae_image_to_u8(x, (int)s[0], (int)s[1], (int)s[2], (int)s[3], u);
    free(x);
    return u;
}

static dhf_vae *load_vae(void)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/vae", g_model);
    dhf_vae *v = NULL;
    if (dhf_vae_load_with_decoder(dir, NULL, true, &v) != 0)
        fail_msg("%s", dhf_err_msg());
    return v;
}

static void test_vae_decode(void **state)
{
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/vae_decode.safetensors", g_ref);
    if (!dhf_path_exists(path))
        skip();
    g_fail = 0;
    dhf_st_file *ref = NULL;
    if (dhf_st_open(path, &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_vae *v = load_vae();
    dhf_parity_report rep;
    dhf_parity_init(&rep, g_tol, "vae_decode");
    dhf_tensor z = ref_tensor(ref, "in/z"), lat = ref_tensor(ref, "in/latents"), img = NULL, img2 = NULL;
    dhf_vae_decode_debug dbg;
    if (dhf_vae_decode(v, z, &img, &dbg) != 0 || dhf_vae_decode_latents(v, lat, &img2) != 0)
        fail_msg("%s", dhf_err_msg());
    check(&rep, dbg.post_quant_conv, ref, "dbg/post_quant_conv");
    check(&rep, dbg.conv_in, ref, "dbg/conv_in");
    check(&rep, dbg.mid_out, ref, "dbg/mid_out");
    for (int i = 0; i < DHF_UNET_MAX_BLOCKS; i++) {
        char name[32];
        snprintf(name, sizeof name, "dbg/up%d_out", i);
        if (dhf_st_find(ref, name))
            check(&rep, dbg.up_out[i], ref, name);
    }
    check(&rep, img, ref, "out/image");
    check(&rep, img2, ref, "out/image");   /* latents / 0.18215 on the way in */
    check_u8_exact(ref, "out/image", "out/image_u8", true);
    check_u8_exact(ref, "probe/x", "probe/u8", false);
    size_t n = 0;
    uint8_t *u = to_u8(img, &n);
    check_u8_rule(u, ref, "out/image_u8");
    free(u);
    dhf_parity_print(&rep, stdout);
    dhf_vae_decode_debug_free(&dbg);
    dhf_free(z);
    dhf_free(lat);
    dhf_free(img);
    dhf_free(img2);
    dhf_vae_free(v);
    dhf_st_close(ref);
    assert_int_equal(g_fail, 0);
}

/* ---- generation ---------------------------------------------------------------- */

typedef struct {
    const dhf_st_file *ref;
    dhf_parity_report *rep;
    int n_labels;
    int64_t labels[64];
    dhf_tensor feats[64][16];    /* kept per saved index: the 12 native features */
    int nf;
} gen_ctx;

static int on_step(void *user, const dhf_saved_step *s)
{
    gen_ctx *g = user;
    for (int l = 0; l < s->n_features; l++) {
        char name[64];
        snprintf(name, sizeof name, "feat/t%02d/layer%02d", s->label, l + 1);
        if (g->rep)
            check(g->rep, s->feats[l], g->ref, name);
        if (dhf_clone(s->feats[l], &g->feats[s->save_index][l]) != DHF_OK)
            return dhf_err_set("clone");
        dhf_nn_unscope(g->feats[s->save_index][l]);
    }
    g->nf = s->n_features;
    return 0;
}

static void free_feats(gen_ctx *g)
{
    for (int k = 0; k < 64; k++)
        for (int l = 0; l < 16; l++)
            dhf_free(g->feats[k][l]);
}

static int64_t ref_i64(const dhf_st_file *f, const char *name, int i)
{
    const dhf_st_info *info = dhf_st_find(f, name);
    assert_non_null(info);
    int64_t v;
    memcpy(&v, (const char *)info->data + 8 * (size_t)i, 8);
    return v;
}

/* agg/input: the labels in meta/agg_input_labels order (the flipped slots), each
 * slot's 12 layers resized to R and concatenated -> [B, S*C, R, R] */
static void check_agg_input(gen_ctx *g, dhf_parity_report *rep)
{
    const dhf_st_info *li = dhf_st_find(g->ref, "meta/agg_input_labels");
    if (!li || !dhf_st_find(g->ref, "agg/input"))
        return;
    int S = (int)li->numel;
    int64_t R = ref_i64(g->ref, "meta/output_resolution", 0);
    dhf_tensor slots[64];
    for (int s = 0; s < S; s++) {
        int64_t label = ref_i64(g->ref, "meta/agg_input_labels", s);
        int k = -1;
        for (int q = 0; q < g->n_labels; q++)
            if (g->labels[q] == label)
                k = q;
        assert_true(k >= 0);
        assert_int_equal(dhf_resize_concat(g->feats[k], g->nf, R, &slots[s]), 0);
    }
    dhf_tensor cat = NULL;
    assert_int_equal(dhf_cat(slots, S, 1, &cat), DHF_OK);
    check(rep, cat, g->ref, "agg/input");
    dhf_free(cat);
    for (int s = 0; s < S; s++)
        dhf_free(slots[s]);
}

static void run_gen_file(const char *stem, const dhf_unet *u, const dhf_vae *v,
                         const dhf_clip_text *te, const dhf_clip_tokenizer *tok)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.safetensors", g_ref, stem);
    dhf_st_file *ref = NULL;
    if (dhf_st_open(path, &ref) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_parity_report rep;
    dhf_parity_init(&rep, g_tol, stem);
    float gsf;
    assert_int_equal(dhf_st_read_f32(ref, "meta/guidance_scale", &gsf, 1), 0);
    double gs = gsf == -1.0f ? -1.0 : (double)gsf;
    bool cfg = gs != -1.0;
    gen_ctx g = {.ref = ref, .rep = &rep};
    const dhf_st_info *si = dhf_st_find(ref, "meta/save_timestep");
    assert_non_null(si);
    g.n_labels = (int)si->numel;
    for (int k = 0; k < g.n_labels; k++)
        g.labels[k] = ref_i64(ref, "meta/save_timestep", k);
    int N = (int)ref_i64(ref, "meta/num_timesteps", 0);
    float ut[64];
    assert_int_equal(dhf_generation_saved_timesteps(N, g.labels, g.n_labels, ut), 0);
    const dhf_st_info *fu = dhf_st_find(ref, "meta/feat_unet_timestep");
    for (int k = 0; fu && k < g.n_labels; k++)
        assert_true(ut[k] == ((const float *)fu->data)[k]);

    /* 1. from the stored inputs */
    dhf_tensor xT = ref_tensor(ref, "in/xT"), cond = ref_tensor(ref, "in/cond");
    dhf_tensor uncond = cfg ? ref_tensor(ref, "in/uncond") : NULL;
    dhf_tensor xs = NULL, x0p = NULL, eps = NULL, ec = NULL, eu = NULL, x0 = NULL, img = NULL;
    dhf_generation_opts o = {.num_timesteps = N, .save_timestep = g.labels, .n_save = g.n_labels,
                             .guidance_scale = gs, .xs = &xs, .x0_preds = &x0p, .eps = &eps,
                             .eps_cond = &ec, .eps_uncond = cfg ? &eu : NULL, .x0 = &x0};
    if (dhf_ddim_generate(u, xT, cond, uncond, &o, on_step, &g, NULL) != 0)
        fail_msg("%s: %s", stem, dhf_err_msg());
    check(&rep, xs, ref, "xs");
    check(&rep, x0p, ref, "x0_preds");
    check(&rep, eps, ref, "eps");
    check(&rep, x0, ref, "x0");
    if (dhf_st_find(ref, "eps_cond"))
        check(&rep, ec, ref, "eps_cond");
    if (cfg && dhf_st_find(ref, "eps_uncond"))
        check(&rep, eu, ref, "eps_uncond");
    check_agg_input(&g, &rep);
    if (dhf_vae_decode_latents(v, x0, &img) != 0)
        fail_msg("%s", dhf_err_msg());
    check(&rep, img, ref, "out/image");
    size_t n = 0;
    uint8_t *u8 = to_u8(img, &n);
    check_u8_rule(u8, ref, "out/image_u8");
    free(u8);
    free_feats(&g);

    /* 2. end to end from the prompt: ids, embeddings, the whole run again */
    const char *prompt = dhf_st_metadata_get(ref, "prompt");
    const char *neg = dhf_st_metadata_get(ref, "negative_prompt");
    assert_non_null(prompt);
    int64_t ids[77], nids[77];
    assert_int_equal(dhf_clip_tokenize(tok, prompt, strlen(prompt), ids, NULL, NULL), 0);
    assert_int_equal(dhf_clip_tokenize(tok, neg ? neg : "", neg ? strlen(neg) : 0, nids, NULL, NULL), 0);
    const dhf_st_info *pi = dhf_st_find(ref, "in/prompt_input_ids");
    const dhf_st_info *ni = dhf_st_find(ref, "in/negative_input_ids");
    assert_memory_equal(ids, pi->data, sizeof ids);
    assert_memory_equal(nids, ni->data, sizeof nids);
    int64_t B = dhf_size(xT, 0);
    dhf_tensor c1 = NULL, n1 = NULL, cB = NULL, nB = NULL;
    if (dhf_clip_text_forward(te, ids, 1, 77, &c1, NULL, NULL) != 0 ||
        dhf_clip_text_forward(te, nids, 1, 77, &n1, NULL, NULL) != 0)
        fail_msg("%s", dhf_err_msg());
    int64_t shape[3] = {B, 77, dhf_size(c1, 2)};
    assert_int_equal(dhf_expand(c1, shape, 3, &cB), DHF_OK);
    assert_int_equal(dhf_expand(n1, shape, 3, &nB), DHF_OK);
    check(&rep, cB, ref, "in/cond");
    if (cfg)
        check(&rep, nB, ref, "in/uncond");
    gen_ctx g2 = {.ref = ref, .rep = NULL};
    dhf_tensor x0b = NULL;
    dhf_generation_opts o2 = {.num_timesteps = N, .save_timestep = g.labels, .n_save = g.n_labels,
                              .guidance_scale = gs};
    if (dhf_ddim_generate(u, xT, cB, nB, &o2, on_step, &g2, &x0b) != 0)
        fail_msg("%s: %s", stem, dhf_err_msg());
    check(&rep, x0b, ref, "x0");
    for (int k = 0; k < g.n_labels; k++)
        for (int l = 0; l < g2.nf; l++) {
            char name[64];
            snprintf(name, sizeof name, "feat/t%02d/layer%02d", (int)g.labels[k], l + 1);
            check(&rep, g2.feats[k][l], ref, name);
        }
    free_feats(&g2);
    print_message("%s (guidance %g): %d tensors, %d failing\n", stem, gs, rep.n_checked, rep.n_fail);
    dhf_parity_print(&rep, stdout);
    dhf_tensor all[] = {xT, cond, uncond, xs, x0p, eps, ec, eu, x0, img, c1, n1, cB, nB, x0b};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        dhf_free(all[i]);
    dhf_st_close(ref);
}

static void test_generation(void **state)
{
    (void)state;
    const char *stems[] = {"gen_cfg7p5", "gen_nocfg", "gen_cfg7p5_sd21"};
    int present = 0;
    for (size_t i = 0; i < sizeof stems / sizeof stems[0]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s.safetensors", g_ref, stems[i]);
        present += dhf_path_exists(p);
    }
    if (!present)
        skip();
    g_fail = 0;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/unet", g_model);
    dhf_unet *u = NULL;
    dhf_clip_text *te = NULL;
    dhf_clip_tokenizer *tok = NULL;
    if (dhf_unet_load(dir, NULL, &u) != 0 || dhf_clip_text_load(g_te, NULL, &te) != 0 ||
        dhf_clip_tokenizer_load(g_tok, &tok) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_vae *v = load_vae();
    for (size_t i = 0; i < sizeof stems / sizeof stems[0]; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s.safetensors", g_ref, stems[i]);
        if (dhf_path_exists(p))
            run_gen_file(stems[i], u, v, te, tok);
    }
    dhf_unet_free(u);
    dhf_vae_free(v);
    dhf_clip_text_free(te);
    dhf_clip_tokenizer_free(tok);
    assert_int_equal(g_fail, 0);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        snprintf(g_model, sizeof g_model, "%s", argv[1]);
    if (argc > 2)
        snprintf(g_te, sizeof g_te, "%s", argv[2]);
    if (argc > 3)
        snprintf(g_tok, sizeof g_tok, "%s", argv[3]);
    if (argc > 4)
        snprintf(g_ref, sizeof g_ref, "%s", argv[4]);
    if (!dhf_is_dir(g_ref)) {
        fprintf(stderr, "%s: %s is absent: %s\n", argv[0], g_ref, argc > 4 ? "error" : "skipping");
        return argc > 4 ? 1 : 77;
    }
    char tol[4300];
    snprintf(tol, sizeof tol, "%s/../../tolerances.json", g_ref);
    if (dhf_tolerances_load(tol, &g_tol) != 0) {
        fprintf(stderr, "%s\n", dhf_err_msg());
        return 1;
    }
    dhf_set_num_threads(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vae_decode),
        cmocka_unit_test(test_generation),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    dhf_tolerances_free(g_tol);
    return rc;
}
