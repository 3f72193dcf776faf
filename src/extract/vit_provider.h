/* vit_provider.h — the paper's ViT baselines as `dhf eval` descriptor providers:
 *
 *   dhf eval CONFIG --provider dino[:MODEL]     DINO: keys of blocks[vit.dino_layer] at
 *                                               patch stride vit.dino_stride
 *   dhf eval CONFIG --provider dinov2[:MODEL]   DINOv2: tokens of blocks[vit.dinov2_layer]
 *
 * MODEL (default vit.dino_model / vit.dinov2_model) is a preset or a folder with
 * config.json; the weights come from vit.dino_weights / vit.dinov2_weights, else the
 * folder's model.safetensors or model.pth. Features are computed on the fly from
 * the image (the extractors' LANCZOS preprocessing, extract/vit.h) and cover the whole
 * image, so eval.resize must be stretch. */
#ifndef DHF_EXTRACT_VIT_PROVIDER_H
#define DHF_EXTRACT_VIT_PROVIDER_H

#include "eval/provider.h"
#include "extract/vit.h"

int dhf_provider_dino_open(const dhf_provider_args *args, dhf_provider *out);
int dhf_provider_dinov2_open(const dhf_provider_args *args, dhf_provider *out);

/* The model and weights a provider would use (config keys, optional MODEL argument):
 * *cfg and the weights path, or an error saying what is missing. */
int dhf_vit_resolve(const dhf_config *c, dhf_vit_family family, const char *arg,
                    dhf_vit_config *cfg, char *weights, size_t cap);

/* `dhf init-model --preset tiny-dino | tiny-dinov2 | <a ViT preset>`: out_dir/config.json
 * and out_dir/model.safetensors with seeded random weights, the folder made beside and
 * renamed into place. *n_params may be NULL. */
int dhf_vit_init_write(const char *out_dir, const char *preset, uint64_t seed,
                       dhf_st_dtype dtype, bool force, int64_t *n_params);

#endif
