/* cache_identity.c — the identity of the features a network was trained on
 * (cache_identity.h): from a cache layout, described, compared, and as JSON. */
#include "cache/cache_identity.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/str.h"

int dhf_cache_identity_from_layout(const dhf_cache_layout *l, dhf_cache_identity *out)
{
    if (!l || !out)
        return dhf_err_set("dhf_cache_identity_from_layout: NULL argument");
    if (l->num_steps < 0 || l->num_steps > DHF_CACHE_ID_MAX_STEPS || l->num_layers < 0 ||
        l->num_layers > DHF_CACHE_ID_MAX_LAYERS)
        return dhf_err_set("cache layout: %d steps / %d layers is out of range (at most %d / %d)",
                           l->num_steps, l->num_layers, DHF_CACHE_ID_MAX_STEPS, DHF_CACHE_ID_MAX_LAYERS);
    memset(out, 0, sizeof *out);
    snprintf(out->model_name, sizeof out->model_name, "%s", l->model_name);
    snprintf(out->model_hash, sizeof out->model_hash, "%s", l->model_hash);
    out->features_json = l->identity_json;
    out->num_steps = l->num_steps;
    for (int s = 0; s < l->num_steps; s++)
        out->save_timestep[s] = l->save_label[s];
    out->num_layers = l->num_layers;
    for (int i = 0; i < l->num_layers; i++)
        for (int k = 0; k < 3; k++)
            out->layer_chw[i][k] = l->layer_chw[i][k];
    return 0;
}

static const char *features_or_empty(const dhf_cache_identity *id)
{
    return id->features_json && id->features_json[0] ? id->features_json : "{}";
}

void dhf_cache_identity_describe(const dhf_cache_identity *id, char *buf, size_t n)
{
    if (!buf || n == 0)
        return;
    size_t w = 0;
#define PUT(...)                                                                      \
    do {                                                                              \
        if (w < n) {                                                                  \
            int k_ = snprintf(buf + w, n - w, __VA_ARGS__);                           \
            w = k_ < 0 ? n : w + (size_t)k_;                                          \
        }                                                                             \
    } while (0)
    PUT("model %s (hash %s), save_timestep [", id->model_name[0] ? id->model_name : "?",
        id->model_hash[0] ? id->model_hash : "?");
    for (int s = 0; s < id->num_steps; s++)
        PUT("%s%" PRId64, s ? ", " : "", id->save_timestep[s]);
    PUT("], layers [");
    for (int l = 0; l < id->num_layers; l++)
        PUT("%s%" PRId64 "x%" PRId64 "x%" PRId64, l ? ", " : "", id->layer_chw[l][0],
            id->layer_chw[l][1], id->layer_chw[l][2]);
    PUT("], features %s", features_or_empty(id));
#undef PUT
}

/* The keys in which generation features legitimately differ from the inversion
 * features a network was trained on (the paper applies inversion-trained networks to
 * generated images): how the latent came about and what conditioned it. */
static const char *const mode_keys[] = {"diffusion_mode", "prompt", "negative_prompt",
                                        "guidance_scale", "prompt_embeds", "image_resize",
                                        "image_load_resolution", "vae_latent", "vae_seed", NULL};

static bool is_generation(const cJSON *o)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "diffusion_mode");
    return cJSON_IsString(m) && strcmp(m->valuestring, "generation") == 0;
}

/* Compares two JSON texts structurally (key order does not matter). */
static bool json_same(const char *a, const char *b)
{
    cJSON *ja = cJSON_Parse(a), *jb = cJSON_Parse(b);
    /* generation features through an inversion-trained network: compare the rest */
    if (ja && jb && is_generation(ja) != is_generation(jb))
        for (int i = 0; mode_keys[i]; i++) {
            cJSON_DeleteItemFromObjectCaseSensitive(ja, mode_keys[i]);
            cJSON_DeleteItemFromObjectCaseSensitive(jb, mode_keys[i]);
        }
    bool same = ja && jb && cJSON_Compare(ja, jb, true);
    if (!ja || !jb)
        same = strcmp(a, b) == 0;
    cJSON_Delete(ja);
    cJSON_Delete(jb);
    return same;
}

int dhf_cache_identity_check(const dhf_cache_identity *want, const char *want_name,
                            const dhf_cache_identity *have, const char *have_name)
{
    if (!want || !have)
        return dhf_err_set("dhf_cache_identity_check: NULL identity");
    char diff[1024] = "";
    if (strcmp(want->model_hash, have->model_hash) != 0 ||
        strcmp(want->model_name, have->model_name) != 0) {
        snprintf(diff, sizeof diff, "different model: %s (hash %s) vs %s (hash %s)",
                 want->model_name, want->model_hash, have->model_name, have->model_hash);
    } else if (want->num_steps != have->num_steps) {
        snprintf(diff, sizeof diff, "different number of saved timesteps: %d vs %d",
                 want->num_steps, have->num_steps);
    } else if (want->num_layers != have->num_layers) {
        snprintf(diff, sizeof diff, "different number of layers: %d vs %d", want->num_layers,
                 have->num_layers);
    } else {
        for (int s = 0; !diff[0] && s < want->num_steps; s++)
            if (want->save_timestep[s] != have->save_timestep[s])
                snprintf(diff, sizeof diff,
                         "save_timestep[%d] differs: %" PRId64 " vs %" PRId64, s,
                         want->save_timestep[s], have->save_timestep[s]);
        for (int l = 0; !diff[0] && l < want->num_layers; l++)
            if (want->layer_chw[l][0] != have->layer_chw[l][0] ||
                want->layer_chw[l][1] != have->layer_chw[l][1] ||
                want->layer_chw[l][2] != have->layer_chw[l][2])
                snprintf(diff, sizeof diff,
                         "layer %d shape differs: %" PRId64 "x%" PRId64 "x%" PRId64
                         " vs %" PRId64 "x%" PRId64 "x%" PRId64,
                         l, want->layer_chw[l][0], want->layer_chw[l][1], want->layer_chw[l][2],
                         have->layer_chw[l][0], have->layer_chw[l][1], have->layer_chw[l][2]);
        if (!diff[0] && !json_same(features_or_empty(want), features_or_empty(have)))
            snprintf(diff, sizeof diff, "different feature settings (identity JSON)");
    }
    if (!diff[0])
        return 0;
    char a[4096], b[4096];
    dhf_cache_identity_describe(want, a, sizeof a);
    dhf_cache_identity_describe(have, b, sizeof b);
    char order[600] = "";   /* which side each "X vs Y" value comes from */
    if (strstr(diff, " vs "))
        snprintf(order, sizeof order, " (%.280s vs %.280s)", want_name, have_name);
    return dhf_err_set("%s does not match %s: %s%s\n  %s: %s\n  %s: %s", have_name, want_name,
                       diff, order, want_name, a, have_name, b);
}

char *dhf_cache_identity_to_json(const dhf_cache_identity *id)
{
    char num[32];
    cJSON *o = cJSON_CreateObject();
    bool ok = o != NULL;
    ok = ok && cJSON_AddStringToObject(o, "model_name", id->model_name);
    ok = ok && cJSON_AddStringToObject(o, "model_hash", id->model_hash);
    cJSON *features = cJSON_Parse(features_or_empty(id));
    if (!features)
        features = cJSON_CreateString(features_or_empty(id));   /* keep it, even if not JSON */
    if (!features || !cJSON_AddItemToObject(o, "features", features)) {
        cJSON_Delete(features);
        ok = false;
    }
    cJSON *ts = ok ? cJSON_AddArrayToObject(o, "save_timestep") : NULL;
    for (int s = 0; ts && s < id->num_steps; s++) {
        snprintf(num, sizeof num, "%" PRId64, id->save_timestep[s]);
        cJSON *e = cJSON_CreateRaw(num);
        if (!e || !cJSON_AddItemToArray(ts, e))
            ok = false;
    }
    cJSON *shapes = ok ? cJSON_AddArrayToObject(o, "layer_shapes") : NULL;
    for (int l = 0; shapes && l < id->num_layers; l++) {
        cJSON *row = cJSON_CreateArray();
        for (int k = 0; row && k < 3; k++) {
            snprintf(num, sizeof num, "%" PRId64, id->layer_chw[l][k]);
            cJSON *e = cJSON_CreateRaw(num);
            if (!e || !cJSON_AddItemToArray(row, e))
                ok = false;
        }
        if (!row || !cJSON_AddItemToArray(shapes, row)) {
            cJSON_Delete(row);
            ok = false;
        }
    }
    char *s = ok && ts && shapes ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* JSON integer -> int64 exactly (cJSON keeps a double: refuse what it cannot hold). */
static int json_int(const cJSON *e, int64_t *out)
{
    if (!cJSON_IsNumber(e))
        return -1;
    double d = e->valuedouble;
    if (d != d || d < -9007199254740992.0 || d > 9007199254740992.0 || d != (double)(int64_t)d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

int dhf_cache_identity_from_json(const char *path, const char *text, dhf_cache_identity *id,
                              char **features)
{
    memset(id, 0, sizeof *id);
    *features = NULL;
    cJSON *o = cJSON_Parse(text);
    const char *what = NULL;
    if (!cJSON_IsObject(o)) {
        what = "not a JSON object";
        goto bad;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "model_name");
    const cJSON *hash = cJSON_GetObjectItemCaseSensitive(o, "model_hash");
    const cJSON *feat = cJSON_GetObjectItemCaseSensitive(o, "features");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(o, "save_timestep");
    const cJSON *shapes = cJSON_GetObjectItemCaseSensitive(o, "layer_shapes");
    if (!cJSON_IsString(name) || !cJSON_IsString(hash)) {
        what = "'model_name' and 'model_hash' must be strings";
        goto bad;
    }
    snprintf(id->model_name, sizeof id->model_name, "%s", name->valuestring);
    snprintf(id->model_hash, sizeof id->model_hash, "%s", hash->valuestring);
    if (!cJSON_IsArray(ts) || cJSON_GetArraySize(ts) > DHF_CACHE_ID_MAX_STEPS) {
        what = "'save_timestep' must be an array of at most 64 integers";
        goto bad;
    }
    id->num_steps = cJSON_GetArraySize(ts);
    for (int s = 0; s < id->num_steps; s++)
        if (json_int(cJSON_GetArrayItem(ts, s), &id->save_timestep[s]) != 0) {
            what = "'save_timestep' must be an array of integers";
            goto bad;
        }
    if (!cJSON_IsArray(shapes) || cJSON_GetArraySize(shapes) > DHF_CACHE_ID_MAX_LAYERS) {
        what = "'layer_shapes' must be an array of at most 64 [C, H, W] triples";
        goto bad;
    }
    id->num_layers = cJSON_GetArraySize(shapes);
    for (int l = 0; l < id->num_layers; l++) {
        const cJSON *row = cJSON_GetArrayItem(shapes, l);
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != 3) {
            what = "'layer_shapes' entries must be [C, H, W]";
            goto bad;
        }
        for (int k = 0; k < 3; k++)
            if (json_int(cJSON_GetArrayItem(row, k), &id->layer_chw[l][k]) != 0) {
                what = "'layer_shapes' entries must be integers";
                goto bad;
            }
    }
    if (feat) {
        *features = cJSON_IsString(feat) ? dhf_strdup(feat->valuestring) : cJSON_PrintUnformatted(feat);
    } else {
        *features = dhf_strdup("{}");
    }
    if (!*features) {
        cJSON_Delete(o);
        return dhf_err_set("%s: __metadata__ 'cache_identity': out of memory", path);
    }
    id->features_json = *features;
    cJSON_Delete(o);
    return 0;
bad:
    cJSON_Delete(o);
    return dhf_err_set("%s: __metadata__ 'cache_identity': %s", path, what);
}

