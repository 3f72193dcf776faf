/* table1_rows.c — the paper's Table 1 as data: its rows (which features, which
 * provider, which trained network), the networks trained for it, the relations
 * between rows its text states, and the figures it prints. */
#include "experiment/table1_internal.h"

#include "core/fsutil.h"

#include <math.h>
#include <string.h>

const char *const t1_model_names[T1_NMODELS] = {"sd15", "sd21"};
const char *const t1_setting_names[T1_NSETTINGS] = {"one-step", "multi-step"};
const char *const t1_dataset_names[T1_NDATASETS] = {"spair", "cub"};

#define NONE {NAN, NAN, NAN}

const t1_row t1_rows[] = {
    {"sd-layer-4", "SD-Layer-4", "1 × 1", T1_SD15, T1_ONE_STEP, "layer:4", NULL, NULL, NONE},
    {"sd-concat-all", "SD-Concat-All", "12 × 1", T1_SD15, T1_ONE_STEP, "concat", NULL, NULL, NONE},
    {"ours-one-step", "Ours-One-Step", "12 × 1", T1_SD15, T1_ONE_STEP, "hyperfeatures",
     "ours-one-step", NULL, NONE},
    {"sd-layer-pruned", "SD-Layer-Pruned", "1 × 1", T1_SD15, T1_MULTI_STEP, "pruned", "ours",
     NULL, NONE},
    {"ours-pruned", "Ours-Pruned", "1 × 1", T1_SD15, T1_MULTI_STEP, "bottleneck", "ours", NULL,
     NONE},
    /* the paper's headline figures (its Table 1) */
    {"ours", "Ours (SD-1.5)", "12 × S", T1_SD15, T1_MULTI_STEP, "hyperfeatures", "ours", NULL,
     {72.56, 64.61, 82.29}},
    {"ours-sd21", "Ours-SDv2-1", "12 × S", T1_SD21, T1_MULTI_STEP, "hyperfeatures", "ours-sd21",
     NULL, NONE},
    /* the ViT baselines: DINO layer 9 keys, DINOv2 layer 11 tokens (extract/vit.h) */
    {"dino", "DINO", "ViT", T1_VIT, 0, "dino", NULL, NULL, {51.68, 41.04, NAN}},
    {"dinov2", "DINOv2", "ViT", T1_VIT, 0, "dinov2", NULL, NULL, NONE},
    {NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, NONE},
};

const t1_network t1_networks[] = {
    {"ours-one-step", "Ours-One-Step (SD-1.5, one-step features)", T1_SD15, T1_ONE_STEP},
    {"ours", "Ours (SD-1.5)", T1_SD15, T1_MULTI_STEP},
    {"ours-sd21", "Ours-SDv2-1", T1_SD21, T1_MULTI_STEP},
    {NULL, NULL, 0, 0},
};

const t1_relation t1_relations[] = {
    {"ours", "sd-layer-4", T1_REL_APPROX, 14, "Ours − SD-Layer-4 ≈ +14"},
    {"ours", "ours-one-step", T1_REL_AT_LEAST, 5, "Ours − Ours-One-Step ≥ 5"},
    {"ours-pruned", "sd-layer-pruned", T1_REL_APPROX, 6, "Ours-Pruned − SD-Layer-Pruned ≈ +6"},
    {"ours", "ours-pruned", T1_REL_APPROX, 9, "Ours − Ours-Pruned ≈ 9"},
    {"sd-layer-pruned", "sd-layer-4", T1_REL_APPROX, 0, "SD-Layer-Pruned − SD-Layer-4 ≈ 0 (comparable)"},
    {"sd-layer-4", "sd-concat-all", T1_REL_ABOVE, 0, "SD-Layer-4 − SD-Concat-All > 0 (Concat-All below)"},
    {NULL, NULL, 0, 0, NULL},
};

const t1_row *t1_find_row(const char *id)
{
    for (const t1_row *r = t1_rows; r->id; r++)
        if (strcmp(r->id, id) == 0)
            return r;
    return NULL;
}

const t1_network *t1_find_network(const char *id)
{
    for (const t1_network *n = t1_networks; n->id; n++)
        if (strcmp(n->id, id) == 0)
            return n;
    return NULL;
}

const char *t1_row_unavailable(const dhf_config *c, const t1_row *r)
{
    if (r->unavailable)
        return r->unavailable;
    if (r->model == T1_SD21 && !c->t1_model_sd21[0])
        return "table1.model_sd21 is not set";
    if (r->model == T1_VIT) {
        bool dino = strcmp(r->id, "dino") == 0;
        const char *model = dino ? c->vit_dino_model : c->vit_dinov2_model;
        const char *weights = dino ? c->vit_dino_weights : c->vit_dinov2_weights;
        if (!weights[0] && !dhf_is_dir(model))
            return dino ? "not run: no weights (set vit.dino_weights)"
                        : "not run: no weights (set vit.dinov2_weights)";
    }
    return NULL;
}

bool t1_relation_holds(const t1_relation *rel, double diff, double approx_points)
{
    switch (rel->kind) {
    case T1_REL_APPROX:
        return fabs(diff - rel->points) <= approx_points;
    case T1_REL_AT_LEAST:
        return diff >= rel->points;
    case T1_REL_ABOVE:
        return diff > rel->points;
    }
    return false;
}
