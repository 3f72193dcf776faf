/* test_model_errors.c — bad model folders give clear errors (naming the file and the
 * tensor or key), never a crash: missing / extra tensors, a wrong shape, a truncated
 * weights file, unsupported config values (block type, activation, class
 * embeddings), a missing pad token. Also the accepted variants: the newer VAE
 * attention names (to_q/to_k/to_v/to_out.0) give the same posterior as the v0.14
 * names. Every broken copy is built from a fresh `init-model` folder in a temporary
 * directory (never in the repository or the fixtures). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>

#include "core/error.h"
#include "core/safetensors.h"
#include "extract/clip_text.h"
#include "extract/diffusers_config.h"
#include "extract/init_model.h"
#include "extract/sd_model.h"
#include "extract/unet.h"
#include "extract/vae.h"
#include "common/tmpdir_util.h"

static char *g_root;         /* temp folder holding everything below */
static char g_model[4200];   /* a pristine tiny-sd15 model */

static int setup(void **state)
{
    (void)state;
    g_root = tmp_make_dir("model_errors");
    if (!g_root)
        return -1;
    snprintf(g_model, sizeof g_model, "%s/tiny", g_root);
    dhf_init_model_opts o = {.preset = "tiny-sd15", .seed = 3, .dtype = DHF_ST_F32};
    if (dhf_init_model_write(g_model, &o, NULL) != 0) {
        fprintf(stderr, "setup: %s\n", dhf_err_msg());
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    tmp_remove_tree(g_root);
    free(g_root);
    return 0;
}

/* A copy of component `comp` ("unet", "vae") in a new folder; returns that folder. */
static const char *copy_component(const char *tag, const char *comp, const char *weights)
{
    static char dir[4400];
    char src[4500], dst[4500];
    snprintf(dir, sizeof dir, "%s/%s_%s", g_root, tag, comp);
    mkdir(dir, 0755);
    snprintf(src, sizeof src, "%s/%s/config.json", g_model, comp);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    assert_int_equal(tmp_copy_file(src, dst), 0);
    snprintf(src, sizeof src, "%s/%s/%s", g_model, comp, weights);
    snprintf(dst, sizeof dst, "%s/%s", dir, weights);
    assert_int_equal(tmp_copy_file(src, dst), 0);
    return dir;
}

typedef enum { EDIT_DROP, EDIT_ADD, EDIT_RESHAPE, EDIT_RENAME_SUFFIX } edit_kind;

/* Rewrites dir/file with one edit applied to tensor `name` (or to every tensor whose
 * name contains `name` for RENAME_SUFFIX: `name` -> `to`). */
static void edit_weights(const char *dir, const char *file, edit_kind kind, const char *name,
                         const char *to)
{
    char path[4500], tmp[4600];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    snprintf(tmp, sizeof tmp, "%s.orig", path);
    assert_int_equal(rename(path, tmp), 0);
    dhf_st_file *f = NULL;
    dhf_st_writer *w = NULL;
    if (dhf_st_open(tmp, &f) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(dhf_st_writer_new(&w), 0);
    for (int i = 0; i < dhf_st_count(f); i++) {
        const dhf_st_info *t = dhf_st_at(f, i);
        char new_name[512];
        snprintf(new_name, sizeof new_name, "%s", t->name);
        if (kind == EDIT_DROP && strcmp(t->name, name) == 0)
            continue;
        int64_t shape[8];
        int nd = t->ndim;
        memcpy(shape, t->shape, sizeof shape);
        if (kind == EDIT_RESHAPE && strcmp(t->name, name) == 0) {
            /* same bytes, a different (wrong) shape: [O, I, k, k] -> [O, I*k*k] */
            nd = 2;
            shape[1] = t->shape[1] * t->shape[2] * t->shape[3];
        }
        if (kind == EDIT_RENAME_SUFFIX) {
            const char *hit = strstr(t->name, name);
            if (hit)
                snprintf(new_name, sizeof new_name, "%.*s%s%s", (int)(hit - t->name), t->name,
                         to, hit + strlen(name));
        }
        assert_int_equal(dhf_st_writer_add(w, new_name, t->dtype, shape, nd, t->data), 0);
    }
    if (kind == EDIT_ADD) {
        float v[4] = {1, 2, 3, 4};
        int64_t s[1] = {4};
        assert_int_equal(dhf_st_writer_add(w, name, DHF_ST_F32, s, 1, v), 0);
    }
    assert_int_equal(dhf_st_writer_save(w, path), 0);
    dhf_st_writer_free(w);
    dhf_st_close(f);
    unlink(tmp);
}

static void expect_unet_error(const char *dir, const char *needle1, const char *needle2)
{
    dhf_unet *u = NULL;
    long live = dhf_live_tensors();
    assert_int_equal(dhf_unet_load(dir, NULL, &u), -1);
    assert_null(u);
    const char *m = dhf_err_msg();
    printf("  error: %s\n", m);
    if (needle1 && !strstr(m, needle1))
        fail_msg("message lacks '%s': %s", needle1, m);
    if (needle2 && !strstr(m, needle2))
        fail_msg("message lacks '%s': %s", needle2, m);
    assert_int_equal(dhf_live_tensors(), live);   /* partial loads free what they made */
}

static void test_pristine_loads(void **state)
{
    (void)state;
    dhf_sd_model *m = NULL;
    if (dhf_sd_model_load(g_model, NULL, &m) != 0)
        fail_msg("%s", dhf_err_msg());
    assert_int_equal(m->pad_token_id, DHF_CLIP_EOS);
    dhf_sd_model_free(m);
}

static void test_missing_tensor(void **state)
{
    (void)state;
    const char *dir = copy_component("missing", "unet", "diffusion_pytorch_model.safetensors");
    edit_weights(dir, "diffusion_pytorch_model.safetensors", EDIT_DROP,
                 "up_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight", NULL);
    expect_unet_error(dir, "missing tensor 'up_blocks.2.attentions.1.transformer_blocks.0.attn2.to_k.weight'",
                      "diffusion_pytorch_model.safetensors");
}

static void test_extra_tensor(void **state)
{
    (void)state;
    const char *dir = copy_component("extra", "unet", "diffusion_pytorch_model.safetensors");
    edit_weights(dir, "diffusion_pytorch_model.safetensors", EDIT_ADD,
                 "add_embedding.linear_1.weight", NULL);
    expect_unet_error(dir, "unexpected tensor 'add_embedding.linear_1.weight'",
                      "diffusion_pytorch_model.safetensors");
}

static void test_wrong_shape(void **state)
{
    (void)state;
    const char *dir = copy_component("shape", "unet", "diffusion_pytorch_model.safetensors");
    edit_weights(dir, "diffusion_pytorch_model.safetensors", EDIT_RESHAPE,
                 "mid_block.resnets.1.conv2.weight", NULL);
    expect_unet_error(dir, "'mid_block.resnets.1.conv2.weight' has shape [64, 576]",
                      "expected [64, 64, 3, 3]");
}

static void test_truncated_weights(void **state)
{
    (void)state;
    const char *dir = copy_component("trunc", "unet", "diffusion_pytorch_model.safetensors");
    char path[4500];
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    expect_unet_error(dir, "diffusion_pytorch_model.safetensors", NULL);
    /* a header cut short */
    assert_int_equal(truncate(path, 20), 0);
    expect_unet_error(dir, "diffusion_pytorch_model.safetensors", NULL);
}

static void test_missing_weights_file(void **state)
{
    (void)state;
    const char *dir = copy_component("nofile", "unet", "diffusion_pytorch_model.safetensors");
    char path[4500], bin[4500];
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    snprintf(bin, sizeof bin, "%s/diffusion_pytorch_model.bin", dir);
    assert_int_equal(rename(path, bin), 0);
    /* a .bin is read now (pt_weights.h): this one is no torch.save zip */
    expect_unet_error(dir, "diffusion_pytorch_model.bin: not a torch.save zip archive", NULL);
    unlink(bin);
    expect_unet_error(dir, "missing weights file", NULL);
}

/* Sets key to the JSON value `value` in dir/config.json. */
static void edit_config(const char *dir, const char *key, const char *value)
{
    char path[4500];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *root = cJSON_Parse(buf), *v = cJSON_Parse(value);
    assert_non_null(root);
    assert_non_null(v);
    if (cJSON_GetObjectItemCaseSensitive(root, key))
        cJSON_ReplaceItemInObjectCaseSensitive(root, key, v);
    else
        cJSON_AddItemToObject(root, key, v);
    char *text = cJSON_Print(root);
    assert_int_equal(tmp_write_text(path, text), 0);
    free(text);
    cJSON_Delete(root);
}

static void test_unsupported_config(void **state)
{
    (void)state;
    const char *dir = copy_component("blocktype", "unet", "diffusion_pytorch_model.safetensors");
    edit_config(dir, "down_block_types",
                "[\"SimpleCrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", "
                "\"CrossAttnDownBlock2D\", \"DownBlock2D\"]");
    expect_unet_error(dir, "down_block_types'[0]: unsupported block type \"SimpleCrossAttnDownBlock2D\"",
                      "config.json");
    dir = copy_component("upblock", "unet", "diffusion_pytorch_model.safetensors");
    edit_config(dir, "up_block_types",
                "[\"AttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", "
                "\"CrossAttnUpBlock2D\"]");
    expect_unet_error(dir, "up_block_types'[0]", "AttnUpBlock2D");
    dir = copy_component("act", "unet", "diffusion_pytorch_model.safetensors");
    edit_config(dir, "act_fn", "\"gelu\"");
    expect_unet_error(dir, "key 'act_fn': unsupported value \"gelu\"", "config.json");
    dir = copy_component("class", "unet", "diffusion_pytorch_model.safetensors");
    edit_config(dir, "class_embed_type", "\"timestep\"");
    expect_unet_error(dir, "key 'class_embed_type'", NULL);
    dir = copy_component("groups", "unet", "diffusion_pytorch_model.safetensors");
    edit_config(dir, "norm_num_groups", "5");
    expect_unet_error(dir, "norm_num_groups", NULL);
    dir = copy_component("heads", "unet", "diffusion_pytorch_model.safetensors");
    edit_config(dir, "attention_head_dim", "[8, 8, 8]");
    expect_unet_error(dir, "attention_head_dim", "one per block");
    dir = copy_component("json", "unet", "diffusion_pytorch_model.safetensors");
    {
        char p[4500];
        snprintf(p, sizeof p, "%s/config.json", dir);
        assert_int_equal(tmp_write_text(p, "[\"in_channels\": 4}"), 0);
    }
    expect_unet_error(dir, "not valid JSON", NULL);
}

static void test_text_encoder_errors(void **state)
{
    (void)state;
    const char *dir = copy_component("te_act", "text_encoder", "model.safetensors");
    edit_config(dir, "hidden_act", "\"relu\"");
    dhf_clip_text *c = NULL;
    assert_int_equal(dhf_clip_text_load(dir, NULL, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "key 'hidden_act': unsupported value \"relu\""));
    dir = copy_component("te_miss", "text_encoder", "model.safetensors");
    edit_weights(dir, "model.safetensors", EDIT_DROP, "text_model.final_layer_norm.bias", NULL);
    assert_int_equal(dhf_clip_text_load(dir, NULL, &c), -1);
    assert_non_null(strstr(dhf_err_msg(), "missing tensor 'text_model.final_layer_norm.bias'"));
    /* a tokenizer folder without a pad token */
    char tok[4400];
    snprintf(tok, sizeof tok, "%s/tok_nopad", g_root);
    mkdir(tok, 0755);
    char p[4500];
    snprintf(p, sizeof p, "%s/tokenizer_config.json", tok);
    assert_int_equal(tmp_write_text(p, "{\"model_max_length\": 77}"), 0);
    int64_t pad = -7;
    assert_int_equal(dhf_tokenizer_pad_id(tok, &pad), -1);
    assert_non_null(strstr(dhf_err_msg(), "pad_token"));
    assert_int_equal(tmp_write_text(p, "{\"pad_token\": {\"content\": \"!\"}}"), 0);
    assert_int_equal(dhf_tokenizer_pad_id(tok, &pad), 0);
    assert_int_equal(pad, 0);
    assert_int_equal(tmp_write_text(p, "{\"pad_token\": \"<unk>\"}"), 0);
    assert_int_equal(dhf_tokenizer_pad_id(tok, &pad), -1);
    assert_non_null(strstr(dhf_err_msg(), "<unk>"));
}

/* VAE: newer attention names load and give the same posterior; decoder tensors are
 * ignored but a stray encoder tensor is not. */
static void test_vae_attention_spellings(void **state)
{
    (void)state;
    const char *w = "diffusion_pytorch_model.safetensors";
    char orig_dir[4400];
    snprintf(orig_dir, sizeof orig_dir, "%s/vae", g_model);
    const char *dir = copy_component("vae_new", "vae", w);
    edit_weights(dir, w, EDIT_RENAME_SUFFIX, "attentions.0.query.", "attentions.0.to_q.");
    edit_weights(dir, w, EDIT_RENAME_SUFFIX, "attentions.0.key.", "attentions.0.to_k.");
    edit_weights(dir, w, EDIT_RENAME_SUFFIX, "attentions.0.value.", "attentions.0.to_v.");
    edit_weights(dir, w, EDIT_RENAME_SUFFIX, "attentions.0.proj_attn.", "attentions.0.to_out.0.");
    dhf_vae *a = NULL, *b = NULL;
    if (dhf_vae_load(orig_dir, NULL, &a) != 0 || dhf_vae_load(dir, NULL, &b) != 0)
        fail_msg("%s", dhf_err_msg());
    int64_t shape[4] = {1, 3, 32, 32};
    dhf_tensor px = NULL;
    assert_int_equal(dhf_rand(9, DHF_F32, shape, 4, &px), DHF_OK);
    dhf_vae_posterior pa, pb;
    assert_int_equal(dhf_inference_begin(), DHF_OK);
    assert_int_equal(dhf_vae_encode(a, px, &pa), 0);
    assert_int_equal(dhf_vae_encode(b, px, &pb), 0);
    assert_int_equal(dhf_inference_end(), DHF_OK);
    double d = -1;
    assert_int_equal(dhf_max_abs_diff(pa.moments, pb.moments, &d), DHF_OK);
    assert_true(d == 0.0);
    dhf_vae_posterior_free(&pa);
    dhf_vae_posterior_free(&pb);
    dhf_free(px);
    dhf_vae_free(a);
    dhf_vae_free(b);

    dir = copy_component("vae_extra", "vae", w);
    edit_weights(dir, w, EDIT_ADD, "encoder.mid_block.attentions.0.rel_pos", NULL);
    assert_int_equal(dhf_vae_load(dir, NULL, &a), -1);
    assert_non_null(strstr(dhf_err_msg(), "unexpected tensor 'encoder.mid_block.attentions.0.rel_pos'"));
    dir = copy_component("vae_nodec", "vae", w);
    edit_weights(dir, w, EDIT_DROP, "decoder.conv_out.weight", NULL);
    if (dhf_vae_load(dir, NULL, &a) != 0)
        fail_msg("decoder tensors should not be required: %s", dhf_err_msg());
    dhf_vae_free(a);
}

static void test_folder_errors(void **state)
{
    (void)state;
    dhf_sd_model *m = NULL;
    char p[4400];
    snprintf(p, sizeof p, "%s/does_not_exist", g_root);
    assert_int_equal(dhf_sd_model_load(p, NULL, &m), -1);
    assert_non_null(strstr(dhf_err_msg(), "not found"));
    snprintf(p, sizeof p, "%s/empty_model", g_root);
    mkdir(p, 0755);
    assert_int_equal(dhf_sd_model_load(p, NULL, &m), -1);
    assert_non_null(strstr(dhf_err_msg(), "unet/config.json"));
    /* prompt_embeds with the wrong width */
    char pe[4500];
    snprintf(pe, sizeof pe, "%s/pe.safetensors", g_root);
    dhf_st_writer *w = NULL;
    assert_int_equal(dhf_st_writer_new(&w), 0);
    static float zeros[77 * 16];
    int64_t s[3] = {1, 77, 16};
    assert_int_equal(dhf_st_writer_add(w, "encoder_hidden_states", DHF_ST_F32, s, 3, zeros), 0);
    assert_int_equal(dhf_st_writer_save(w, pe), 0);
    dhf_st_writer_free(w);
    dhf_tensor t = NULL;
    assert_int_equal(dhf_load_prompt_embeds(pe, 32, &t), -1);
    assert_non_null(strstr(dhf_err_msg(), "[1, L, 32]"));
    assert_int_equal(dhf_load_prompt_embeds(pe, 16, &t), 0);
    assert_int_equal(dhf_size(t, 1), 77);
    dhf_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pristine_loads),
        cmocka_unit_test(test_missing_tensor),
        cmocka_unit_test(test_extra_tensor),
        cmocka_unit_test(test_wrong_shape),
        cmocka_unit_test(test_truncated_weights),
        cmocka_unit_test(test_missing_weights_file),
        cmocka_unit_test(test_unsupported_config),
        cmocka_unit_test(test_text_encoder_errors),
        cmocka_unit_test(test_vae_attention_spellings),
        cmocka_unit_test(test_folder_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
