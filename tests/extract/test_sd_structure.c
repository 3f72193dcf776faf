/* test_sd_structure.c — properties of the SD networks that need no reference file:
 * the SD 2.x linear projections equal 1x1 convolutions with the same weights (so
 * the fixture-checked conv path vouches for the linear one); per-block head lists;
 * query-chunked attention equals the unchunked product; latents whose size is not a
 * multiple of 8 (the upsampler follows the skip's size); in-memory random weights
 * equal the weights init-model writes for the same seed; init-model is
 * deterministic; the empty-prompt conditioning uses the tokenizer's pad id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "extract/attention.h"
#include "extract/ddim.h"
#include "extract/init_model.h"
#include "extract/inversion.h"
#include "extract/sd_model.h"
#include "extract/unet.h"
#include "common/pt_write.h"
#include "common/tmpdir_util.h"

static dhf_unet *random_unet(const dhf_unet_config *cfg, uint64_t seed)
{
    dhf_params p;
    dhf_unet *u = NULL;
    dhf_params_init_random(&p, seed, "<test>", NULL);
    if (dhf_unet_build(cfg, &p, &u) != 0)
        fail_msg("%s", dhf_err_msg());
    dhf_params_close(&p);
    return u;
}

/* eps and features of one call on seeded inputs. */
static void run(const dhf_unet *u, int64_t h, int64_t w, dhf_tensor *eps, dhf_tensor *feats)
{
    const dhf_unet_config *c = dhf_unet_config_of(u);
    int64_t xs[4] = {2, c->in_channels, h, w}, cs[3] = {2, 77, c->cross_attention_dim};
    dhf_tensor x = NULL, ctx = NULL;
    assert_int_equal(dhf_randn(1, DHF_F32, xs, 4, &x), DHF_OK);
    assert_int_equal(dhf_randn(2, DHF_F32, cs, 3, &ctx), DHF_OK);
    float t[2] = {-1.0f, 731.0f};
    assert_int_equal(dhf_inference_begin(), DHF_OK);
    if (dhf_unet_forward(u, x, t, ctx, eps, feats, NULL) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_inference_end(), DHF_OK);
    dhf_free(x);
    dhf_free(ctx);
}

static double rel_diff(dhf_tensor a, dhf_tensor b)
{
    double d = -1, m = 0;
    dhf_tensor ab = NULL;
    assert_int_equal(dhf_max_abs_diff(a, b, &d), DHF_OK);
    assert_int_equal(dhf_abs(a, &ab), DHF_OK);
    assert_int_equal(dhf_max_all(ab, &m), DHF_OK);
    dhf_free(ab);
    return d / (m > 0 ? m : 1);
}

static void test_heads_list_semantics(void **state)
{
    (void)state;
    dhf_unet_config c;
    assert_int_equal(dhf_init_model_unet_config("tiny-sd21", &c), 0);
    assert_true(c.use_linear_projection);
    assert_int_equal(c.heads[0], 2);
    assert_int_equal(c.heads[1], 4);
    assert_int_equal(c.heads[3], 8);
    assert_int_equal(c.cross_attention_dim, 48);
    /* newer configs: num_attention_heads wins over attention_head_dim */
    const char *json = "{\"block_out_channels\": [32, 64], \"down_block_types\": "
                       "[\"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"up_block_types\": "
                       "[\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"norm_num_groups\": 8, "
                       "\"attention_head_dim\": 64, \"num_attention_heads\": [2, 4]}";
    assert_int_equal(dhf_unet_config_parse(json, "<inline>", &c), 0);
    assert_int_equal(c.n_blocks, 2);
    assert_int_equal(c.heads[0], 2);
    assert_int_equal(c.heads[1], 4);
    /* a head count that does not divide the width is refused */
    json = "{\"block_out_channels\": [32, 48], \"down_block_types\": "
           "[\"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"up_block_types\": "
           "[\"UpBlock2D\", \"CrossAttnUpBlock2D\"], \"norm_num_groups\": 8, "
           "\"attention_head_dim\": [5, 8]}";
    assert_int_equal(dhf_unet_config_parse(json, "<inline>", &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "attention_head_dim'[0]"));
}

/* use_linear_projection true vs false with the same numbers (the random source draws
 * by name and count, so [C, C] and [C, C, 1, 1] get identical values). */
static void test_linear_projection_equals_conv(void **state)
{
    (void)state;
    dhf_unet_config lin, conv;
    assert_int_equal(dhf_init_model_unet_config("tiny-sd21", &lin), 0);
    conv = lin;
    conv.use_linear_projection = false;
    dhf_unet *a = random_unet(&lin, 77), *b = random_unet(&conv, 77);
    dhf_tensor ea = NULL, eb = NULL, fa[12] = {0}, fb[12] = {0};
    run(a, 16, 24, &ea, fa);
    run(b, 16, 24, &eb, fb);
    double worst = rel_diff(ea, eb);
    for (int k = 0; k < 12; k++) {
        double r = rel_diff(fa[k], fb[k]);
        worst = r > worst ? r : worst;
        dhf_free(fa[k]);
        dhf_free(fb[k]);
    }
    printf("linear vs 1x1-conv projections: worst rel diff %.3g\n", worst);
    assert_true(worst < 1e-5);
    dhf_free(ea);
    dhf_free(eb);
    dhf_unet_free(a);
    dhf_unet_free(b);
}

static void test_chunked_attention(void **state)
{
    (void)state;
    dhf_unet_config c;
    assert_int_equal(dhf_init_model_unet_config("tiny-sd15", &c), 0);
    dhf_unet *u = random_unet(&c, 5);
    dhf_tensor e1 = NULL, e2 = NULL, f1[12] = {0}, f2[12] = {0};
    run(u, 32, 32, &e1, f1);   /* 1024 tokens at the top level */
    size_t saved = dhf_attention_chunk_bytes();
    dhf_attention_set_chunk_bytes(4096);   /* a few query rows per chunk */
    run(u, 32, 32, &e2, f2);
    dhf_attention_set_chunk_bytes(saved);
    double r = rel_diff(e1, e2);
    printf("chunked vs unchunked attention: rel diff %.3g\n", r);
    assert_true(r < 1e-6);
    for (int k = 0; k < 12; k++) {
        dhf_free(f1[k]);
        dhf_free(f2[k]);
    }
    dhf_free(e1);
    dhf_free(e2);
    dhf_unet_free(u);
}

/* 13x8 and 10x12 latents: down path 13 -> 7 -> 4 -> 2, up path back via skip sizes. */
static void test_odd_latent_sizes(void **state)
{
    (void)state;
    dhf_unet_config c;
    assert_int_equal(dhf_init_model_unet_config("tiny-sd15", &c), 0);
    dhf_unet *u = random_unet(&c, 6);
    int64_t sizes[2][2] = {{13, 8}, {10, 12}};
    for (int s = 0; s < 2; s++) {
        dhf_tensor e = NULL, f[12] = {0};
        run(u, sizes[s][0], sizes[s][1], &e, f);
        assert_int_equal(dhf_size(e, 2), sizes[s][0]);
        assert_int_equal(dhf_size(e, 3), sizes[s][1]);
        for (int k = 0; k < 12; k++) {
            int64_t chw[3];
            assert_int_equal(dhf_unet_feature_shape(u, k, sizes[s][0], sizes[s][1], chw), 0);
            assert_int_equal(dhf_size(f[k], 1), chw[0]);
            assert_int_equal(dhf_size(f[k], 2), chw[1]);
            assert_int_equal(dhf_size(f[k], 3), chw[2]);
            dhf_free(f[k]);
        }
        dhf_free(e);
    }
    int64_t chw[3];
    assert_int_equal(dhf_unet_feature_shape(u, 0, 13, 8, chw), 0);
    assert_int_equal(chw[1], 2);
    assert_int_equal(chw[2], 1);
    assert_int_equal(dhf_unet_feature_shape(u, 12, 16, 16, chw), -1);
    dhf_unet_free(u);
}

/* GENERATE (what init-model writes) and RANDOM (bench, in memory) give the same net. */
static void test_generated_file_equals_random(void **state)
{
    (void)state;
    char *dir = tmp_make_dir("structure");
    assert_non_null(dir);
    char path[4400];
    snprintf(path, sizeof path, "%s/unet.safetensors", dir);
    dhf_unet_config c;
    assert_int_equal(dhf_init_model_unet_config("tiny-sd21", &c), 0);
    dhf_st_writer *w = NULL;
    assert_int_equal(dhf_st_writer_new(&w), 0);
    dhf_params p;
    dhf_unet *g = NULL;
    dhf_params_init_generate(&p, 123, path, w, DHF_ST_F32);
    assert_int_equal(dhf_unet_build(&c, &p, &g), 0);
    assert_int_equal(dhf_unet_param_count(g), 1407700);
    dhf_unet_free(g);
    assert_int_equal(dhf_st_writer_save(w, path), 0);
    dhf_st_writer_free(w);
    dhf_params_close(&p);
    dhf_unet *from_file = NULL;
    assert_int_equal(dhf_params_open_file(&p, path, NULL), 0);
    assert_int_equal(dhf_unet_build(&c, &p, &from_file), 0);
    assert_int_equal(dhf_params_check_all_used(&p, NULL), 0);
    dhf_params_close(&p);
    dhf_unet *mem = random_unet(&c, 123);
    dhf_tensor e1 = NULL, e2 = NULL;
    run(from_file, 16, 16, &e1, NULL);
    run(mem, 16, 16, &e2, NULL);
    double d = -1;
    assert_int_equal(dhf_max_abs_diff(e1, e2, &d), DHF_OK);
    assert_true(d == 0.0);
    dhf_free(e1);
    dhf_free(e2);
    dhf_unet_free(from_file);
    dhf_unet_free(mem);
    tmp_remove_tree(dir);
    free(dir);
}

static bool files_equal(const char *a, const char *b)
{
    FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
    bool eq = fa && fb;
    while (eq) {
        int ca = fgetc(fa), cb = fgetc(fb);
        if (ca != cb)
            eq = false;
        if (ca == EOF || cb == EOF)
            break;
    }
    if (fa)
        fclose(fa);
    if (fb)
        fclose(fb);
    return eq;
}

static void test_init_model_folders(void **state)
{
    (void)state;
    char *root = tmp_make_dir("init");
    assert_non_null(root);
    char a[4400], b[4400], c[4400];
    snprintf(a, sizeof a, "%s/a", root);
    snprintf(b, sizeof b, "%s/b", root);
    snprintf(c, sizeof c, "%s/c", root);
    dhf_init_model_opts o = {.preset = "tiny-sd21", .seed = 9, .dtype = DHF_ST_F16};
    int64_t n = 0;
    assert_int_equal(dhf_init_model_write(a, &o, &n), 0);
    assert_int_equal(dhf_init_model_write(b, &o, NULL), 0);
    o.seed = 10;
    assert_int_equal(dhf_init_model_write(c, &o, NULL), 0);
    assert_true(n > 1407700);
    const char *files[] = {"unet/diffusion_pytorch_model.safetensors",
                           "vae/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors",
                           "unet/config.json", "tokenizer/special_tokens_map.json"};
    for (int i = 0; i < 5; i++) {
        char pa[4500], pb[4500];
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        assert_true(files_equal(pa, pb));
    }
    /* an existing non-empty folder is refused without force */
    assert_int_equal(dhf_init_model_write(a, &o, NULL), -1);
    assert_non_null(strstr(dhf_err_msg(), "--force"));

    dhf_sd_model *ma = NULL, *mb = NULL, *mc = NULL;
    assert_int_equal(dhf_sd_model_load(a, NULL, &ma), 0);
    assert_int_equal(dhf_sd_model_load(b, NULL, &mb), 0);
    assert_int_equal(dhf_sd_model_load(c, NULL, &mc), 0);
    assert_int_equal(ma->pad_token_id, 0);   /* SD 2.x pads with "!" */
    /* identity: folder name + weights hash; same weights -> same hash part */
    assert_string_equal(strchr(ma->identity, ':'), strchr(mb->identity, ':'));
    assert_string_not_equal(strchr(ma->identity, ':'), strchr(mc->identity, ':'));
    assert_int_equal(strncmp(ma->identity, "a:", 2), 0);

    /* CLIP("") conditioning: [1, 77, 48]; the SD 2.x padding is id 0 */
    dhf_tensor e = NULL, manual = NULL;
    assert_int_equal(dhf_sd_empty_prompt_embeds(ma, &e), 0);
    assert_int_equal(dhf_size(e, 1), 77);
    assert_int_equal(dhf_size(e, 2), 48);
    int64_t ids[77];
    dhf_clip_empty_prompt_ids(0, ids, 77);
    assert_int_equal(dhf_clip_text_forward(ma->text_encoder, ids, 1, 77, &manual, NULL, NULL), 0);
    double d = -1;
    assert_int_equal(dhf_max_abs_diff(e, manual, &d), DHF_OK);
    assert_true(d == 0.0);

    /* image -> latent -> a short inversion, the way `dhf extract` chains them */
    uint8_t rgb[40 * 56 * 3];
    for (size_t i = 0; i < sizeof rgb; i++)
        rgb[i] = (uint8_t)(i * 7 % 251);
    dhf_tensor lat = NULL, lat2 = NULL;
    assert_int_equal(dhf_sd_encode_image(ma, rgb, 56, 40, 64, DHF_IMAGE_RESIZE_PIL, 0, DHF_LATENT_SAMPLE,
                                         dhf_sd_latent_seed(0, "cat/001"), &lat), 0);
    assert_int_equal(dhf_sd_encode_image(ma, rgb, 56, 40, 64, DHF_IMAGE_RESIZE_PIL, 0, DHF_LATENT_SAMPLE,
                                         dhf_sd_latent_seed(0, "cat/001"), &lat2), 0);
    assert_int_equal(dhf_max_abs_diff(lat, lat2, &d), DHF_OK);
    assert_true(d == 0.0);
    assert_int_equal(dhf_size(lat, 2), 8);
    /* image_resize pil_load: Pillow to load_size, then torch up to the VAE size; with
     * load_size == size the interpolate is the identity and it equals pil */
    {
        dhf_tensor a = NULL, b = NULL, c = NULL;
        assert_int_equal(dhf_rgb_to_vae_input(rgb, 56, 40, 64, DHF_IMAGE_RESIZE_PIL, 0, &a), 0);
        assert_int_equal(dhf_rgb_to_vae_input(rgb, 56, 40, 64, DHF_IMAGE_RESIZE_PIL_LOAD, 64, &b),
                         0);
        assert_int_equal(dhf_rgb_to_vae_input(rgb, 56, 40, 64, DHF_IMAGE_RESIZE_PIL_LOAD, 24, &c),
                         0);
        assert_int_equal(dhf_max_abs_diff(a, b, &d), DHF_OK);
        assert_true(d == 0.0);
        assert_int_equal(dhf_max_abs_diff(a, c, &d), DHF_OK);
        assert_true(d > 0.01);
        assert_int_equal(dhf_size(c, 3), 64);
        dhf_free(a);
        dhf_free(b);
        dhf_free(c);
    }
    dhf_free(lat2);
    lat2 = NULL;
    assert_int_equal(dhf_sd_encode_image(ma, rgb, 56, 40, 60, DHF_IMAGE_RESIZE_PIL, 0, DHF_LATENT_MEAN, 0,
                                         &lat2), -1);
    int64_t shapes[16][3];
    assert_int_equal(dhf_sd_feature_layout(ma, 64, shapes, 16), 12);
    assert_int_equal(shapes[0][0], 48);
    assert_int_equal(shapes[0][1], 1);
    assert_int_equal(shapes[11][0], 16);
    assert_int_equal(shapes[11][1], 8);
    dhf_free(lat);
    dhf_free(e);
    dhf_free(manual);
    dhf_sd_model_free(ma);
    dhf_sd_model_free(mb);
    dhf_sd_model_free(mc);
    assert_int_equal(dhf_live_tensors(), 0);
    tmp_remove_tree(root);
    free(root);
}

static void test_timestep_embedding(void **state)
{
    (void)state;
    float t[2] = {0.0f, -1.0f};
    dhf_tensor e = NULL;
    assert_int_equal(dhf_timestep_embedding(t, 2, 8, true, 0.0, &e), 0);
    float v[16];
    assert_int_equal(dhf_to_buffer(e, DHF_F32, v, sizeof v), DHF_OK);
    /* t = 0: [cos 0 x4, sin 0 x4] = [1,1,1,1,0,0,0,0] */
    for (int j = 0; j < 4; j++) {
        assert_float_equal(v[j], 1.0f, 0);
        assert_float_equal(v[4 + j], 0.0f, 0);
    }
    /* t = -1, j = 0: freq 1 -> cos(-1), sin(-1); j = 1: freq 10000^(-1/4) = 0.1 */
    assert_float_equal(v[8], cosf(-1.0f), 1e-6);
    assert_float_equal(v[12], sinf(-1.0f), 1e-6);
    assert_float_equal(v[9], cosf(-0.1f), 1e-6);
    dhf_free(e);
    assert_int_equal(dhf_timestep_embedding(t, 2, 7, false, 1.0, &e), 0);
    assert_int_equal(dhf_size(e, 1), 7);   /* odd width: zero padded */
    assert_int_equal(dhf_to_buffer(e, DHF_F32, v, 14 * sizeof(float)), DHF_OK);
    assert_float_equal(v[0], 0.0f, 0);     /* [sin, cos] order: sin 0 */
    assert_float_equal(v[3], 1.0f, 0);
    assert_float_equal(v[6], 0.0f, 0);
    dhf_free(e);
}

static void test_ddim_plan(void **state)
{
    (void)state;
    dhf_ddim_plan p;
    assert_int_equal(dhf_ddim_plan_make(50, &p), 0);
    assert_int_equal(p.unet_t[0], -1);
    assert_int_equal(p.unet_t[1], 0);
    assert_int_equal(p.unet_t[49], 960);
    assert_int_equal(p.next_t[49], 980);
    assert_float_equal(p.alpha[0], 1.0f, 0);
    assert_float_equal(p.alpha_next[0], 0.999149978f, 1e-9);
    assert_float_equal(p.alpha[4], 0.940874457f, 1e-8);
    assert_int_equal(dhf_ddim_scheduler_timestep(&p, 0), 980);
    int64_t labels[3] = {49, 45, 0};
    int steps[3];
    assert_int_equal(dhf_ddim_save_steps(&p, labels, 3, steps), 0);
    assert_int_equal(steps[0], 0);
    assert_int_equal(steps[1], 4);
    assert_int_equal(steps[2], 49);
    float ut[3];
    assert_int_equal(dhf_inversion_saved_timesteps(50, labels, 3, ut), 0);
    assert_float_equal(ut[0], -1.0f, 0);
    assert_float_equal(ut[1], 60.0f, 0);
    assert_float_equal(ut[2], 960.0f, 0);
    int64_t dup[2] = {5, 5};
    assert_int_equal(dhf_ddim_save_steps(&p, dup, 2, steps), -1);
    assert_int_equal(dhf_ddim_plan_make(1, &p), 0);
    assert_int_equal(p.unet_t[0], -1);
    assert_int_equal(p.next_t[0], 0);
    assert_int_equal(dhf_ddim_plan_make(0, &p), -1);
    assert_int_equal(dhf_ddim_plan_make(1001, &p), -1);
}

/* PyTorch .bin weights (a torch.save state_dict) load through the safetensors path:
 * the same UNet output bit for bit, the weights file named in the identity, and
 * safetensors preferred when both are present. */
static void test_bin_weights(void **state)
{
    (void)state;
    char *root = tmp_make_dir("bin");
    assert_non_null(root);
    char st_dir[4400], bin_dir[4400], st_file[4500], bin_file[4500], cmd[9200];
    snprintf(st_dir, sizeof st_dir, "%s/st", root);
    snprintf(bin_dir, sizeof bin_dir, "%s/bin", root);
    dhf_init_model_opts o = {.preset = "tiny-sd15", .seed = 4, .dtype = DHF_ST_F16};
    assert_int_equal(dhf_init_model_write(st_dir, &o, NULL), 0);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", st_dir, bin_dir);
    assert_int_equal(system(cmd), 0);
    snprintf(st_file, sizeof st_file, "%s/unet/diffusion_pytorch_model.safetensors", bin_dir);
    snprintf(bin_file, sizeof bin_file, "%s/unet/diffusion_pytorch_model.bin", bin_dir);
    if (test_safetensors_to_bin(st_file, bin_file))
        fail_msg("%s", dhf_err_msg());
    /* both present: safetensors preferred */
    dhf_sd_model *m_st = NULL, *m_bin = NULL;
    assert_int_equal(dhf_sd_model_load(bin_dir, NULL, &m_bin), 0);
    assert_null(strchr(m_bin->identity, '@'));
    dhf_sd_model_free(m_bin);
    assert_int_equal(unlink(st_file), 0);
    if (dhf_sd_model_load(bin_dir, NULL, &m_bin))
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_sd_model_load(st_dir, NULL, &m_st), 0);
    printf("[ info ] identities: %s / %s\n", m_st->identity, m_bin->identity);
    assert_non_null(strstr(m_bin->identity, "@diffusion_pytorch_model.bin"));
    dhf_tensor e1 = NULL, e2 = NULL, f1[12] = { 0 }, f2[12] = { 0 };
    run(m_st->unet, 8, 8, &e1, f1);
    run(m_bin->unet, 8, 8, &e2, f2);
    double d = -1;
    assert_int_equal(dhf_max_abs_diff(e1, e2, &d), DHF_OK);
    assert_true(d == 0.0);
    for (int k = 0; k < dhf_unet_n_features(m_st->unet); k++) {
        assert_int_equal(dhf_max_abs_diff(f1[k], f2[k], &d), DHF_OK);
        assert_true(d == 0.0);
        dhf_free(f1[k]);
        dhf_free(f2[k]);
    }
    dhf_free(e1);
    dhf_free(e2);
    dhf_sd_model_free(m_st);
    dhf_sd_model_free(m_bin);
    tmp_remove_tree(root);
    free(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bin_weights),
        cmocka_unit_test(test_heads_list_semantics),
        cmocka_unit_test(test_linear_projection_equals_conv),
        cmocka_unit_test(test_chunked_attention),
        cmocka_unit_test(test_odd_latent_sizes),
        cmocka_unit_test(test_generated_file_equals_random),
        cmocka_unit_test(test_init_model_folders),
        cmocka_unit_test(test_timestep_embedding),
        cmocka_unit_test(test_ddim_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
