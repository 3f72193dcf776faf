/* clip_text.c — CLIPTextModel forward, as transformers 4.27 computes it. */
#include "extract/clip_text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "extract/attention.h"
#include "extract/nn_layers.h"

typedef struct {
    dhf_layernorm ln1, ln2;
    dhf_linear_layer q, k, v, o, fc1, fc2;
} clip_layer;

struct dhf_clip_text {
    dhf_clip_config cfg;
    dhf_tensor_list params;
    dhf_model_placement placement;
    dhf_tensor token_embedding;      /* [vocab, hidden] */
    dhf_tensor position_embedding;   /* [max_pos, hidden] */
    clip_layer *layers;
    dhf_layernorm final_ln;
};

void dhf_clip_text_free(dhf_clip_text *c)
{
    if (!c)
        return;
    free(c->layers);
    dhf_tensor_list_free(&c->params);
    free(c);
}

static int build(dhf_clip_text *c, dhf_params *p)
{
    const dhf_clip_config *cf = &c->cfg;
    int H = cf->hidden_size, I = cf->intermediate_size;
    double eps = cf->layer_norm_eps;
    char n[256];
    int64_t tok[2] = {cf->vocab_size, H}, pos[2] = {cf->max_position_embeddings, H};
    if (dhf_params_get(p, DHF_INIT_EMBEDDING, 0, tok, 2, &c->token_embedding,
                       "text_model.embeddings.token_embedding.weight") != 0 ||
        dhf_params_get(p, DHF_INIT_EMBEDDING, 0, pos, 2, &c->position_embedding,
                       "text_model.embeddings.position_embedding.weight") != 0)
        return -1;
    /* transformers < 4.31 saved position_ids (= arange) as a persistent buffer. */
    const char *pid = "text_model.embeddings.position_ids";
    if (dhf_params_has(p, pid)) {
        int64_t shape[DHF_MAX_DIMS];
        int nd = dhf_params_stored_shape(p, pid, shape);
        bool ok = (nd == 2 && shape[0] == 1 && shape[1] == cf->max_position_embeddings) ||
                  (nd == 1 && shape[0] == cf->max_position_embeddings);
        if (!ok)
            return dhf_err_set("%s: tensor '%s' should be [1, %d]", p->path, pid,
                               cf->max_position_embeddings);
        dhf_params_mark_used(p, pid);
    }
    c->layers = calloc((size_t)cf->num_hidden_layers, sizeof *c->layers);
    if (!c->layers)
        return dhf_err_set("out of memory");
    for (int i = 0; i < cf->num_hidden_layers; i++) {
        clip_layer *l = &c->layers[i];
#define NAME(s) (snprintf(n, sizeof n, "text_model.encoder.layers.%d.%s", i, s), n)
        if (dhf_layernorm_load(&l->ln1, p, NAME("layer_norm1"), H, eps) != 0 ||
            dhf_linear_load(&l->q, p, NAME("self_attn.q_proj"), H, H, true) != 0 ||
            dhf_linear_load(&l->k, p, NAME("self_attn.k_proj"), H, H, true) != 0 ||
            dhf_linear_load(&l->v, p, NAME("self_attn.v_proj"), H, H, true) != 0 ||
            dhf_linear_load(&l->o, p, NAME("self_attn.out_proj"), H, H, true) != 0 ||
            dhf_layernorm_load(&l->ln2, p, NAME("layer_norm2"), H, eps) != 0 ||
            dhf_linear_load(&l->fc1, p, NAME("mlp.fc1"), H, I, true) != 0 ||
            dhf_linear_load(&l->fc2, p, NAME("mlp.fc2"), I, H, true) != 0)
            return -1;
#undef NAME
    }
    return dhf_layernorm_load(&c->final_ln, p, "text_model.final_layer_norm", H, eps);
}

int dhf_clip_text_build(const dhf_clip_config *cfg, dhf_params *p, dhf_clip_text **out)
{
    dhf_clip_text *c = calloc(1, sizeof *c);
    if (!c)
        return dhf_err_set("out of memory");
    c->cfg = *cfg;
    c->placement.device = p->device;
    c->placement.dtype = p->dtype;
    dhf_tensor_list *saved = p->dst;
    if (p->mode != DHF_PARAMS_GENERATE)
        p->dst = &c->params;
    int rc = build(c, p);
    p->dst = saved;
    if (rc != 0) {
        dhf_clip_text_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

/* model.safetensors (diffusers' name) or transformers' pytorch_model.bin: the stem of
 * the weights present ("model" when neither is: its message lists what was looked for) */
static const char *text_encoder_stem(const char *dir)
{
    char path[4096];
    if (dhf_find_weights_file(dir, "model", path, sizeof path) == 0)
        return "model";
    if (dhf_find_weights_file(dir, "pytorch_model", path, sizeof path) == 0)
        return "pytorch_model";
    return "model";
}

int dhf_clip_text_load(const char *dir, const dhf_model_placement *placement,
                       dhf_clip_text **out)
{
    char cfg_path[4096];
    dhf_clip_config cfg;
    dhf_params p;
    if (dhf_path_join(cfg_path, sizeof cfg_path, dir, "config.json") != 0 ||
        dhf_clip_config_load(cfg_path, &cfg) != 0 ||
        dhf_params_open_component(&p, dir, text_encoder_stem(dir), placement) != 0)
        return -1;
    dhf_clip_text *c = NULL;
    int rc = dhf_clip_text_build(&cfg, &p, &c);
    /* CLIPTextModelWithProjection files also carry the (unused) text projection. */
    static const char *const ignored[] = {"text_projection.", NULL};
    if (rc == 0)
        rc = dhf_params_check_all_used(&p, ignored);
    dhf_params_close(&p);
    if (rc != 0) {
        dhf_clip_text_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

const dhf_clip_config *dhf_clip_text_config_of(const dhf_clip_text *c) { return &c->cfg; }

void dhf_clip_empty_prompt_ids(int64_t pad_id, int64_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        ids[i] = i == 0 ? DHF_CLIP_BOS : i == 1 ? DHF_CLIP_EOS : pad_id;
}

/* h += out_proj(attn(LN1(h))); h += fc2(act(fc1(LN2(h)))). h is updated in place. */
static int layer_forward(const dhf_clip_text *c, const clip_layer *l, dhf_tensor h)
{
    int rc = 0;
    int heads = c->cfg.num_attention_heads;
    double scale = 1.0 / sqrt((double)(c->cfg.hidden_size / heads));
    dhf_tensor x = NULL, q = NULL, qs = NULL, k = NULL, v = NULL, a = NULL, o = NULL;
    dhf_tensor x2 = NULL, f1 = NULL, act = NULL, f2 = NULL;
    dhf_scope_begin();
    DHF_CHECK(dhf_layernorm_forward(&l->ln1, h, &x));
    DHF_CHECK(dhf_linear_forward(&l->q, x, &q));
    DHF_SHIM(dhf_mul_scalar(q, scale, &qs));      /* transformers scales q after the bias */
    DHF_CHECK(dhf_linear_forward(&l->k, x, &k));
    DHF_CHECK(dhf_linear_forward(&l->v, x, &v));
    DHF_CHECK(dhf_attention_core(qs, k, v, heads, 1.0, true, &a));
    DHF_CHECK(dhf_linear_forward(&l->o, a, &o));
    DHF_SHIM(dhf_add_(h, o));
    DHF_CHECK(dhf_layernorm_forward(&l->ln2, h, &x2));
    DHF_CHECK(dhf_linear_forward(&l->fc1, x2, &f1));
    if (c->cfg.hidden_act == DHF_ACT_QUICK_GELU)
        DHF_SHIM(dhf_quick_gelu(f1, &act));
    else
        DHF_SHIM(dhf_gelu(f1, &act));
    DHF_CHECK(dhf_linear_forward(&l->fc2, act, &f2));
    DHF_SHIM(dhf_add_(h, f2));
done:
    return dhf_nn_scope_finish(rc, NULL, 0);
}

int dhf_clip_text_forward(const dhf_clip_text *c, const int64_t *ids, int B, int T,
                          dhf_tensor *last_hidden, dhf_tensor *pooled,
                          dhf_tensor *hidden_states)
{
    const dhf_clip_config *cf = &c->cfg;
    if (B < 1 || T < 1 || T > cf->max_position_embeddings)
        return dhf_err_set("clip: need 1..%d tokens per sequence, got %d",
                           cf->max_position_embeddings, T);
    for (int64_t i = 0; i < (int64_t)B * T; i++)
        if (ids[i] < 0 || ids[i] >= cf->vocab_size)
            return dhf_err_set("clip: token id %lld at position %lld is outside the "
                               "vocabulary [0, %d) of %s", (long long)ids[i],
                               (long long)(i % T), cf->vocab_size, cf->path);
    int L = cf->num_hidden_layers;
    int rc = 0;
    dhf_tensor idt = NULL, idd = NULL, tok = NULL, pos = NULL, h = NULL, last = NULL;
    dhf_tensor pool = NULL;
    bool inference = dhf_inference_begin() == DHF_OK;
    dhf_scope_begin();
    int64_t ishape[2] = {B, T};
    DHF_SHIM(dhf_from_buffer(ids, DHF_I64, ishape, 2, &idt));
    DHF_SHIM(dhf_to(idt, DHF_I64, c->placement.device, &idd));
    DHF_SHIM(dhf_embedding(c->token_embedding, idd, &tok));       /* [B, T, H] */
    DHF_SHIM(dhf_narrow(c->position_embedding, 0, 0, T, &pos));   /* [T, H] */
    DHF_SHIM(dhf_add(tok, pos, &h));
    for (int i = 0; i < L; i++) {
        if (hidden_states)
            DHF_SHIM(dhf_clone(h, &hidden_states[i]));
        if (layer_forward(c, &c->layers[i], h) != 0) {
            rc = dhf_err_wrap("text_model.encoder.layers.%d", i);
            goto done;
        }
    }
    if (hidden_states)
        DHF_SHIM(dhf_clone(h, &hidden_states[L]));
    DHF_CHECK(dhf_layernorm_forward(&c->final_ln, h, &last));
    if (pooled) {
        /* transformers: argmax(input_ids) per row -> the first maximal id */
        dhf_tensor rows[64], stacked = NULL;
        if (B > 64) {
            rc = dhf_err_set("clip: pooled output supports at most 64 sequences");
            goto done;
        }
        for (int b = 0; b < B; b++) {
            int best = 0;
            for (int t = 1; t < T; t++)
                if (ids[(int64_t)b * T + t] > ids[(int64_t)b * T + best])
                    best = t;
            dhf_tensor row = NULL;
            DHF_SHIM(dhf_select(last, 0, b, &row));
            DHF_SHIM(dhf_select(row, 0, best, &rows[b]));
        }
        DHF_SHIM(dhf_stack(rows, B, 0, &stacked));
        pool = stacked;
        *pooled = pool;
    }
    *last_hidden = last;
done:;
    dhf_tensor *outs[2] = {last_hidden, pooled};
    if (hidden_states && rc == 0)
        for (int i = 0; i <= L; i++)
            dhf_keep(hidden_states[i]);
    rc = dhf_nn_scope_finish(rc, outs, 2);
    if (inference)
        dhf_inference_end();
    return rc;
}
