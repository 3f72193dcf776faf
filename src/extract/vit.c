/* vit.c — the DINO / DINOv2 ViT forward and its dense features (vit.h): configs and
 * presets, the network from the official state-dict names, the position-embedding
 * interpolation, the blocks, and the DINO keys / DINOv2 tokens. */
#include "extract/vit.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/fsutil.h"
#include "core/image_resize.h"
#include "extract/attention.h"
#include "extract/nn_layers.h"

/* ---- configs ---------------------------------------------------------------- */

typedef struct {
    const char *name;
    dhf_vit_family family;
    int patch, img, dim, depth, heads;
} vit_preset;

/* the official hub architectures (mlp ratio 4, LayerNorm eps 1e-6) and the tiny ones */
static const vit_preset PRESETS[] = {
    {"dino_vits8", DHF_VIT_DINO, 8, 224, 384, 12, 6},
    {"dino_vitb8", DHF_VIT_DINO, 8, 224, 768, 12, 12},
    {"dino_vits16", DHF_VIT_DINO, 16, 224, 384, 12, 6},
    {"dino_vitb16", DHF_VIT_DINO, 16, 224, 768, 12, 12},
    {"dinov2_vits14", DHF_VIT_DINOV2, 14, 518, 384, 12, 6},
    {"dinov2_vitb14", DHF_VIT_DINOV2, 14, 518, 768, 12, 12},
    {"dinov2_vitl14", DHF_VIT_DINOV2, 14, 518, 1024, 24, 16},
    {"tiny-dino", DHF_VIT_DINO, 8, 224, 48, 10, 3},
    {"tiny-dinov2", DHF_VIT_DINOV2, 14, 518, 48, 12, 3},
    {NULL, 0, 0, 0, 0, 0, 0},
};

const char *const *dhf_vit_preset_names(void)
{
    static const char *names[sizeof PRESETS / sizeof PRESETS[0]];
    for (size_t i = 0; PRESETS[i].name; i++)
        names[i] = PRESETS[i].name;
    return names;
}

static void fill(dhf_vit_config *c, const char *name, dhf_vit_family family, int patch,
                 int img, int dim, int depth, int heads)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->family = family;
    c->patch_size = patch;
    c->img_size = img;
    c->pos_grid = img / patch;
    c->embed_dim = dim;
    c->depth = depth;
    c->num_heads = heads;
    c->mlp_hidden = 4 * dim;
    c->layer_norm_eps = 1e-6;
    c->layerscale = family == DHF_VIT_DINOV2;
    c->interpolate_offset = 0.1;
}

int dhf_vit_preset(const char *name, dhf_vit_config *out)
{
    for (const vit_preset *p = PRESETS; p->name; p++)
        if (strcmp(p->name, name) == 0) {
            fill(out, p->name, p->family, p->patch, p->img, p->dim, p->depth, p->heads);
            return 0;
        }
    char known[512] = "";
    for (const vit_preset *p = PRESETS; p->name; p++)
        snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s",
                 known[0] ? ", " : "", p->name);
    return dhf_err_set("unknown ViT model '%s' (a preset: %s; or a folder with config.json)",
                       name, known);
}

static int json_int(const cJSON *o, const char *path, const char *key, int lo, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > 1e6)
        return dhf_err_set("%s: field '%s': expected an integer >= %d", path, key, lo);
    *out = v->valueint;
    return 0;
}

int dhf_vit_config_load(const char *path, dhf_vit_config *out)
{
    char *text = NULL;
    size_t len = 0;
    if (dhf_read_file(path, &text, &len) != 0)
        return -1;
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return dhf_err_set("%s: not a JSON object", path);
    }
    int rc = -1;
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(o, "family");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    int patch = 0, img = 0, dim = 0, depth = 0, heads = 0, hidden = 0;
    dhf_vit_family family;
    if (!cJSON_IsString(fam) ||
        (strcmp(fam->valuestring, "dino") != 0 && strcmp(fam->valuestring, "dinov2") != 0)) {
        dhf_err_set("%s: field 'family': expected \"dino\" or \"dinov2\"", path);
        goto done;
    }
    family = strcmp(fam->valuestring, "dino") == 0 ? DHF_VIT_DINO : DHF_VIT_DINOV2;
    if (json_int(o, path, "patch_size", 1, &patch) || json_int(o, path, "img_size", 1, &img) ||
        json_int(o, path, "embed_dim", 1, &dim) || json_int(o, path, "depth", 1, &depth) ||
        json_int(o, path, "num_heads", 1, &heads))
        goto done;
    if (dim % heads != 0) {
        dhf_err_set("%s: embed_dim %d is not a multiple of num_heads %d", path, dim, heads);
        goto done;
    }
    if (img % patch != 0) {
        dhf_err_set("%s: img_size %d is not a multiple of patch_size %d", path, img, patch);
        goto done;
    }
    fill(out, cJSON_IsString(name) ? name->valuestring : dhf_basename(path), family, patch, img,
         dim, depth, heads);
    const cJSON *ratio = cJSON_GetObjectItemCaseSensitive(o, "mlp_ratio");
    if (cJSON_GetObjectItemCaseSensitive(o, "mlp_hidden")) {
        if (json_int(o, path, "mlp_hidden", 1, &hidden) != 0)
            goto done;
        out->mlp_hidden = hidden;
    } else if (ratio) {
        if (!cJSON_IsNumber(ratio) || !(ratio->valuedouble > 0)) {
            dhf_err_set("%s: field 'mlp_ratio': expected a positive number", path);
            goto done;
        }
        out->mlp_hidden = (int)(dim * ratio->valuedouble);   /* int(C * ratio), as timm */
    }
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(o, "layer_norm_eps");
    if (eps) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0)) {
            dhf_err_set("%s: field 'layer_norm_eps': expected a positive number", path);
            goto done;
        }
        out->layer_norm_eps = eps->valuedouble;
    }
    const cJSON *ls = cJSON_GetObjectItemCaseSensitive(o, "layerscale");
    if (ls)
        out->layerscale = cJSON_IsTrue(ls);
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(o, "interpolate_offset");
    if (off) {
        if (!cJSON_IsNumber(off)) {
            dhf_err_set("%s: field 'interpolate_offset': expected a number", path);
            goto done;
        }
        out->interpolate_offset = off->valuedouble;
    }
    /* what dhf does not implement: say so rather than compute something else */
    const cJSON *reg = cJSON_GetObjectItemCaseSensitive(o, "num_register_tokens");
    const cJSON *aa = cJSON_GetObjectItemCaseSensitive(o, "interpolate_antialias");
    const cJSON *ffn = cJSON_GetObjectItemCaseSensitive(o, "ffn_layer");
    const cJSON *qkvb = cJSON_GetObjectItemCaseSensitive(o, "qkv_bias");
    if (reg && !(cJSON_IsNumber(reg) && reg->valuedouble == 0)) {
        dhf_err_set("%s: field 'num_register_tokens': register models are not supported "
                    "(expected 0)", path);
        goto done;
    }
    if (aa && cJSON_IsTrue(aa)) {
        dhf_err_set("%s: field 'interpolate_antialias': antialiased interpolation (the "
                    "register models') is not supported (expected false)", path);
        goto done;
    }
    if (ffn && !(cJSON_IsString(ffn) && strcmp(ffn->valuestring, "mlp") == 0)) {
        dhf_err_set("%s: field 'ffn_layer': only \"mlp\" is supported", path);
        goto done;
    }
    if (qkvb && !cJSON_IsTrue(qkvb)) {
        dhf_err_set("%s: field 'qkv_bias': expected true", path);
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(o);
    return rc;
}

char *dhf_vit_config_json(const dhf_vit_config *c)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    cJSON_AddStringToObject(o, "family", c->family == DHF_VIT_DINO ? "dino" : "dinov2");
    cJSON_AddNumberToObject(o, "patch_size", c->patch_size);
    cJSON_AddNumberToObject(o, "img_size", c->img_size);
    cJSON_AddNumberToObject(o, "pos_grid", c->pos_grid);
    cJSON_AddNumberToObject(o, "embed_dim", c->embed_dim);
    cJSON_AddNumberToObject(o, "depth", c->depth);
    cJSON_AddNumberToObject(o, "num_heads", c->num_heads);
    cJSON_AddNumberToObject(o, "head_dim", c->embed_dim / c->num_heads);
    cJSON_AddNumberToObject(o, "mlp_hidden", c->mlp_hidden);
    cJSON_AddTrueToObject(o, "qkv_bias");
    cJSON_AddNumberToObject(o, "layer_norm_eps", c->layer_norm_eps);
    cJSON_AddStringToObject(o, "act", "gelu (exact, erf)");
    cJSON_AddBoolToObject(o, "layerscale", c->layerscale);
    cJSON_AddNumberToObject(o, "interpolate_offset", c->interpolate_offset);
    cJSON_AddFalseToObject(o, "interpolate_antialias");
    cJSON_AddNumberToObject(o, "num_register_tokens", 0);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

/* ---- the network ------------------------------------------------------------ */

typedef struct {
    dhf_layernorm norm1, norm2;
    dhf_linear_layer qkv, proj, fc1, fc2;
    dhf_tensor ls1, ls2;      /* [C] LayerScale gammas (DINOv2) */
} vit_block;

struct dhf_vit {
    dhf_vit_config cfg;
    dhf_tensor_list params;
    dhf_conv2d_layer patch;   /* [C, 3, p, p], stride set per call */
    dhf_tensor cls_token;     /* [1, 1, C] */
    float *pos;               /* pos_embed [1 + M*M, C] on the CPU, for the interpolation */
    vit_block *blocks;
    dhf_layernorm norm;
};

void dhf_vit_free(dhf_vit *v)
{
    if (!v)
        return;
    free(v->blocks);
    free(v->pos);
    dhf_tensor_list_free(&v->params);
    free(v);
}

const dhf_vit_config *dhf_vit_config_of(const dhf_vit *v) { return &v->cfg; }

static int build(dhf_vit *v, dhf_params *p)
{
    /* the position grid M is the checkpoint's: pos_embed [1, 1 + M*M, C] */
    if (p->mode == DHF_PARAMS_FILE) {
        int64_t shape[DHF_MAX_DIMS];
        int nd = dhf_params_stored_shape(p, "pos_embed", shape);
        if (nd == 3 && shape[1] > 1) {
            int64_t n = shape[1] - 1, m = (int64_t)llround(sqrt((double)n));
            if (m * m != n)
                return dhf_err_set("%s: tensor 'pos_embed' has %lld patch positions, not a "
                                   "square grid", p->path, (long long)n);
            v->cfg.pos_grid = (int)m;
        }
    }
    const dhf_vit_config *c = &v->cfg;
    int C = c->embed_dim, M = c->pos_grid, H = c->mlp_hidden;
    double eps = c->layer_norm_eps;
    int64_t cls_shape[3] = {1, 1, C}, pos_shape[3] = {1, 1 + (int64_t)M * M, C}, g[1] = {C};
    dhf_tensor pos = NULL;
    if (dhf_params_get(p, DHF_INIT_EMBEDDING, 0, cls_shape, 3, &v->cls_token, "cls_token") != 0 ||
        dhf_params_get(p, DHF_INIT_EMBEDDING, 0, pos_shape, 3, &pos, "pos_embed") != 0 ||
        dhf_conv2d_load(&v->patch, p, "patch_embed.proj", 3, C, c->patch_size, c->patch_size, 0,
                        true) != 0)
        return -1;
    if (pos) {
        size_t n = (size_t)(1 + M * M) * (size_t)C;
        if (!(v->pos = malloc(n * sizeof *v->pos)))
            return dhf_err_set("out of memory");
        if (dhf_to_buffer(pos, DHF_F32, v->pos, n * sizeof *v->pos) != DHF_OK)
            return dhf_nn_shim_fail("dhf_to_buffer(pos_embed)");
    }
    /* DINOv2's mask token (pretraining only) exists in its checkpoints: checked, unused */
    if (c->family == DHF_VIT_DINOV2 && p->mode == DHF_PARAMS_FILE) {
        int64_t shape[DHF_MAX_DIMS];
        int nd = dhf_params_stored_shape(p, "mask_token", shape);
        if (nd >= 0 && !(nd == 2 && shape[0] == 1 && shape[1] == C))
            return dhf_err_set("%s: tensor 'mask_token' should be [1, %d]", p->path, C);
        dhf_params_mark_used(p, "mask_token");
    }
    v->blocks = calloc((size_t)c->depth, sizeof *v->blocks);
    if (!v->blocks)
        return dhf_err_set("out of memory");
    char n[128];
    for (int b = 0; b < c->depth; b++) {
        vit_block *k = &v->blocks[b];
#define NAME(s) (snprintf(n, sizeof n, "blocks.%d.%s", b, s), n)
        if (dhf_layernorm_load(&k->norm1, p, NAME("norm1"), C, eps) != 0 ||
            dhf_linear_load(&k->qkv, p, NAME("attn.qkv"), C, 3 * C, true) != 0 ||
            dhf_linear_load(&k->proj, p, NAME("attn.proj"), C, C, true) != 0 ||
            dhf_layernorm_load(&k->norm2, p, NAME("norm2"), C, eps) != 0 ||
            dhf_linear_load(&k->fc1, p, NAME("mlp.fc1"), C, H, true) != 0 ||
            dhf_linear_load(&k->fc2, p, NAME("mlp.fc2"), H, C, true) != 0)
            return -1;
        if (c->layerscale &&
            (dhf_params_get(p, DHF_INIT_NORM_WEIGHT, 0, g, 1, &k->ls1, "%s", NAME("ls1.gamma")) != 0 ||
             dhf_params_get(p, DHF_INIT_NORM_WEIGHT, 0, g, 1, &k->ls2, "%s", NAME("ls2.gamma")) != 0))
            return -1;
#undef NAME
    }
    return dhf_layernorm_load(&v->norm, p, "norm", C, eps);
}

int dhf_vit_build(const dhf_vit_config *cfg, dhf_params *p, dhf_vit **out)
{
    dhf_vit *v = calloc(1, sizeof *v);
    if (!v)
        return dhf_err_set("out of memory");
    v->cfg = *cfg;
    dhf_tensor_list *saved = p->dst;
    if (p->mode != DHF_PARAMS_GENERATE)
        p->dst = &v->params;
    int rc = build(v, p);
    p->dst = saved;
    if (rc != 0) {
        dhf_vit_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

int dhf_vit_load(const dhf_vit_config *cfg, const char *weights, dhf_vit **out)
{
    dhf_params p;
    if (dhf_params_open_file(&p, weights, NULL) != 0)
        return -1;
    dhf_vit *v = NULL;
    int rc = dhf_vit_build(cfg, &p, &v);
    /* classification heads of other checkpoints are not part of the backbone */
    static const char *const ignored[] = {"head.", NULL};
    if (rc == 0 && (rc = dhf_params_check_all_used(&p, ignored)) != 0)
        dhf_err_wrap("%s (model %s)", weights, cfg->name);
    dhf_params_close(&p);
    if (rc != 0) {
        dhf_vit_free(v);
        return -1;
    }
    *out = v;
    return 0;
}

/* ---- position embedding ------------------------------------------------------ */

/* torch's cubic convolution weights, A = -0.75, for the 4 taps around t in [0, 1) */
static void cubic_weights(double t, double w[4])
{
    const double A = -0.75;
    double x0 = t + 1, x1 = t, x2 = 1 - t, x3 = 2 - t;
    w[0] = ((A * x0 - 5 * A) * x0 + 8 * A) * x0 - 4 * A;
    w[1] = ((A + 2) * x1 - (A + 3)) * x1 * x1 + 1;
    w[2] = ((A + 2) * x2 - (A + 3)) * x2 * x2 + 1;
    w[3] = ((A * x3 - 5 * A) * x3 + 8 * A) * x3 - 4 * A;
}

/* The 4 source indices (clamped) and weights of output index d at scale factor sf. */
static void cubic_taps(int d, double sf, int M, int idx[4], double w[4])
{
    /* the scale factor drives the sampling: src = (d + 0.5) / sf - 0.5, not clamped */
    double src = (d + 0.5) / sf - 0.5;
    double i0 = floor(src);
    cubic_weights(src - i0, w);
    for (int k = 0; k < 4; k++) {
        int i = (int)i0 - 1 + k;
        idx[k] = i < 0 ? 0 : i > M - 1 ? M - 1 : i;
    }
}

void dhf_vit_interpolate_pos(const float *pos, int M, int C, int gh, int gw, int height,
                             int width, double offset, float *out)
{
    memcpy(out, pos, (size_t)C * sizeof *out);   /* the CLS row is never interpolated */
    const float *grid = pos + C;
    float *dst = out + C;
    if (gh * gw == M * M && height == width) {
        /* the official shortcut: tested on the image sides, not on the grid */
        memcpy(dst, grid, (size_t)M * M * (size_t)C * sizeof *dst);
        return;
    }
    double sy = (gh + offset) / M, sx = (gw + offset) / M;   /* rows first */
    for (int y = 0; y < gh; y++) {
        int iy[4];
        double wy[4];
        cubic_taps(y, sy, M, iy, wy);
        for (int x = 0; x < gw; x++) {
            int ix[4];
            double wx[4];
            cubic_taps(x, sx, M, ix, wx);
            float *o = dst + ((size_t)y * gw + x) * C;
            for (int c = 0; c < C; c++) {
                double acc = 0;
                for (int a = 0; a < 4; a++) {
                    double row = 0;
                    for (int b = 0; b < 4; b++)
                        row += wx[b] * grid[((size_t)iy[a] * M + ix[b]) * C + c];
                    acc += wy[a] * row;
                }
                o[c] = (float)acc;
            }
        }
    }
}

void dhf_vit_grid(const dhf_vit_config *c, int stride, int height, int width, int *gh, int *gw)
{
    *gh = height >= c->patch_size ? 1 + (height - c->patch_size) / stride : 0;
    *gw = width >= c->patch_size ? 1 + (width - c->patch_size) / stride : 0;
}

/* ---- forward ----------------------------------------------------------------- */

/* x += proj(attn(LN1(x))) [* ls1]; x += fc2(GELU(fc1(LN2(x)))) [* ls2], x updated in
 * place. With keys_out: stop after LN1 and qkv and return the keys [1, T, C] (head-major
 * channels, bias included) instead. */
static int block_forward(const dhf_vit *v, const vit_block *k, dhf_tensor x, dhf_tensor *keys_out)
{
    const int C = v->cfg.embed_dim, heads = v->cfg.num_heads;
    const double scale = 1.0 / sqrt((double)(C / heads));
    int rc = 0;
    dhf_tensor y = NULL, qkv = NULL, q = NULL, kk = NULL, vv = NULL, a = NULL, o = NULL;
    dhf_tensor y2 = NULL, f1 = NULL, g = NULL, f2 = NULL, kc = NULL;
    dhf_scope_begin();
    DHF_CHECK(dhf_layernorm_forward(&k->norm1, x, &y));
    DHF_CHECK(dhf_linear_forward(&k->qkv, y, &qkv));      /* [1, T, 3C]: q | k | v */
    DHF_SHIM(dhf_narrow(qkv, 2, C, C, &kk));
    if (keys_out) {
        DHF_SHIM(dhf_contiguous(kk, &kc));
        *keys_out = kc;
        goto done;
    }
    DHF_SHIM(dhf_narrow(qkv, 2, 0, C, &q));
    DHF_SHIM(dhf_narrow(qkv, 2, 2 * C, C, &vv));
    DHF_CHECK(dhf_attention_core(q, kk, vv, heads, scale, false, &a));
    DHF_CHECK(dhf_linear_forward(&k->proj, a, &o));
    if (k->ls1)
        DHF_SHIM(dhf_mul_(o, k->ls1));
    DHF_SHIM(dhf_add_(x, o));
    DHF_CHECK(dhf_layernorm_forward(&k->norm2, x, &y2));
    DHF_CHECK(dhf_linear_forward(&k->fc1, y2, &f1));
    DHF_SHIM(dhf_gelu(f1, &g));                          /* exact (erf) */
    DHF_CHECK(dhf_linear_forward(&k->fc2, g, &f2));
    if (k->ls2)
        DHF_SHIM(dhf_mul_(f2, k->ls2));
    DHF_SHIM(dhf_add_(x, f2));
done:;
    dhf_tensor *outs[1] = {keys_out};
    return dhf_nn_scope_finish(rc, keys_out ? outs : NULL, keys_out ? 1 : 0);
}

/* [1, 1 + h*w, C] tokens without CLS as [C, h, w]; keys: channels reordered from
 * head-major (head * head_dim + d) to Amir's d * heads + head. */
static int to_map(const dhf_vit *v, dhf_tensor t, int gh, int gw, bool keys, dhf_tensor *out)
{
    const int C = v->cfg.embed_dim, heads = v->cfg.num_heads;
    int rc = 0;
    dhf_tensor p = NULL, r = NULL, q = NULL, s = NULL, m = NULL, c = NULL;
    dhf_scope_begin();
    int64_t T1 = (int64_t)gh * gw;
    DHF_SHIM(dhf_narrow(t, 1, 1, T1, &p));               /* CLS dropped */
    if (keys) {
        int64_t sh[4] = {T1, heads, C / heads, 1};
        int64_t perm[3] = {0, 2, 1};
        DHF_SHIM(dhf_reshape(p, sh, 3, &r));             /* [hw, heads, head_dim] */
        DHF_SHIM(dhf_permute(r, perm, 3, &q));           /* [hw, head_dim, heads] */
        p = q;
    }
    int64_t flat[2] = {T1, C};
    DHF_SHIM(dhf_reshape(p, flat, 2, &s));
    DHF_SHIM(dhf_transpose(s, 0, 1, &m));               /* [C, hw] */
    int64_t chw[3] = {C, gh, gw};
    DHF_SHIM(dhf_reshape(m, chw, 3, &c));
    *out = c;
done:;
    dhf_tensor *outs[1] = {out};
    return dhf_nn_scope_finish(rc, outs, 1);
}

int dhf_vit_features(const dhf_vit *v, dhf_tensor input, const dhf_vit_opts *o,
                     dhf_tensor *features, dhf_vit_debug *dbg)
{
    const dhf_vit_config *c = &v->cfg;
    int64_t shape[DHF_MAX_DIMS];
    int nd = 0;
    if (dhf_shape(input, shape, &nd) != DHF_OK)
        return dhf_nn_shim_fail("dhf_shape");
    if (nd != 4 || shape[0] != 1 || shape[1] != 3)
        return dhf_err_set("vit: expected an input [1, 3, H, W]");
    if (o->layer < 0 || o->layer >= c->depth)
        return dhf_err_set("vit %s: layer %d is outside its blocks 0..%d", c->name, o->layer,
                           c->depth - 1);
    if (o->stride < 1 || o->stride > c->patch_size)
        return dhf_err_set("vit %s: stride %d: expected 1..%d (the patch size)", c->name,
                           o->stride, c->patch_size);
    int H = (int)shape[2], W = (int)shape[3];
    if (c->family == DHF_VIT_DINOV2 && (H % c->patch_size || W % c->patch_size))
        return dhf_err_set("vit %s: input %dx%d: DINOv2 needs sides that are multiples of %d",
                           c->name, W, H, c->patch_size);
    int gh = 0, gw = 0;
    dhf_vit_grid(c, o->stride, H, W, &gh, &gw);
    if (gh < 1 || gw < 1)
        return dhf_err_set("vit %s: input %dx%d is smaller than one %dx%d patch", c->name, W, H,
                           c->patch_size, c->patch_size);
    const int C = c->embed_dim, M = c->pos_grid;
    const int64_t T = 1 + (int64_t)gh * gw;
    float *posbuf = malloc((size_t)T * (size_t)C * sizeof *posbuf);
    if (!posbuf)
        return dhf_err_set("out of memory");
    dhf_vit_interpolate_pos(v->pos, M, C, gh, gw, H, W, c->interpolate_offset, posbuf);

    int rc = 0;
    dhf_tensor pe = NULL, fl = NULL, tr = NULL, cls = NULL, cat = NULL, pos = NULL, x = NULL;
    dhf_tensor keys = NULL, normed = NULL;
    bool inference = dhf_inference_begin() == DHF_OK;
    dhf_scope_begin();
    dhf_conv2d_layer patch = v->patch;
    patch.stride = o->stride;                            /* Amir: only the stride changes */
    DHF_CHECK(dhf_conv2d_forward(&patch, input, &pe));  /* [1, C, gh, gw] */
    DHF_SHIM(dhf_flatten(pe, 2, 3, &fl));
    DHF_SHIM(dhf_transpose(fl, 1, 2, &tr));             /* [1, gh*gw, C] */
    int64_t cls_shape[3] = {1, 1, C}, pos_shape[3] = {1, T, C};
    DHF_SHIM(dhf_reshape(v->cls_token, cls_shape, 3, &cls));
    dhf_tensor parts[2] = {cls, tr};
    DHF_SHIM(dhf_cat(parts, 2, 1, &cat));
    DHF_SHIM(dhf_from_buffer(posbuf, DHF_F32, pos_shape, 3, &pos));
    DHF_SHIM(dhf_add(cat, pos, &x));
    if (dbg) {
        DHF_SHIM(dhf_clone(pos, &dbg->pos_embed));
        DHF_SHIM(dhf_clone(x, &dbg->tokens_in));
    }
    for (int b = 0; b <= o->layer; b++) {
        bool take_keys = o->keys && b == o->layer;
        if (block_forward(v, &v->blocks[b], x, take_keys ? &keys : NULL) != 0) {
            rc = dhf_err_wrap("vit %s: blocks.%d", c->name, b);
            goto done;
        }
        if (dbg && !take_keys && b == 0)
            DHF_SHIM(dhf_clone(x, &dbg->block00));
        if (dbg && !take_keys && b == 1)
            DHF_SHIM(dhf_clone(x, &dbg->block01));
    }
    if (o->keys) {
        DHF_CHECK(to_map(v, keys, gh, gw, true, features));
    } else if (o->final_norm) {
        DHF_CHECK(dhf_layernorm_forward(&v->norm, x, &normed));
        DHF_CHECK(to_map(v, normed, gh, gw, false, features));
    } else {
        DHF_CHECK(to_map(v, x, gh, gw, false, features));
    }
done:;
    dhf_tensor *outs[5] = {features, dbg ? &dbg->pos_embed : NULL, dbg ? &dbg->tokens_in : NULL,
                           dbg ? &dbg->block00 : NULL, dbg ? &dbg->block01 : NULL};
    rc = dhf_nn_scope_finish(rc, outs, 5);
    if (inference)
        dhf_inference_end();
    free(posbuf);
    return rc;
}

/* ---- preprocessing ----------------------------------------------------------- */

int dhf_vit_preprocess(const dhf_image *src, dhf_vit_family family, int patch_size,
                       int load_size, dhf_image *resized, float **input)
{
    memset(resized, 0, sizeof *resized);
    *input = NULL;
    if (load_size < 1)
        return dhf_err_set("vit: load size %d: expected >= 1", load_size);
    /* torchvision Resize(int) on a PIL image: the shorter side to load_size, the longer
     * int(load_size * long / short) in double; nothing when the size is unchanged */
    int w = src->width, h = src->height;
    int sh = w <= h ? w : h, lg = w <= h ? h : w;
    int new_long = (int)((double)load_size * (double)lg / (double)sh);
    int nw = w <= h ? load_size : new_long, nh = w <= h ? new_long : load_size;
    dhf_image a = {0}, b = {0};
    if (nw == w && nh == h) {
        if (dhf_image_alloc(&a, w, h) != 0)
            return -1;
        memcpy(a.rgb, src->rgb, (size_t)w * h * 3);
    } else if (dhf_image_resize_pil(src, nw, nh, DHF_RESAMPLE_LANCZOS, &a) != 0) {
        return -1;
    }
    if (family == DHF_VIT_DINOV2) {
        /* sd-dino: a second LANCZOS resize (not a crop) to multiples of the patch */
        int mw = patch_size * (a.width / patch_size), mh = patch_size * (a.height / patch_size);
        if (mw < patch_size || mh < patch_size) {
            dhf_image_free(&a);
            return dhf_err_set("vit: image %dx%d at load size %d is smaller than one patch",
                               w, h, load_size);
        }
        if (mw != a.width || mh != a.height) {
            int rc = dhf_image_resize_pil(&a, mw, mh, DHF_RESAMPLE_LANCZOS, &b);
            dhf_image_free(&a);
            if (rc != 0)
                return -1;
            a = b;
        }
    }
    size_t n = (size_t)a.width * a.height;
    float *x = malloc(3 * n * sizeof *x);
    if (!x) {
        dhf_image_free(&a);
        return dhf_err_set("out of memory");
    }
    /* ToTensor + Normalize in float32, ImageNet statistics */
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    for (int ch = 0; ch < 3; ch++)
        for (size_t i = 0; i < n; i++) {
            float v = (float)a.rgb[3 * i + ch] / 255.0f;
            x[ch * n + i] = (v - mean[ch]) / std[ch];
        }
    *resized = a;
    *input = x;
    return 0;
}
