/* vit.h — the ViT backbones of the paper's DINO and DINOv2 baselines, as the
 * official code computes them (facebookresearch/dino VisionTransformer,
 * facebookresearch/dinov2 DinoVisionTransformer), with the dense-descriptor
 * conventions of the extractors the baselines come from: DINO "layer 9 key
 * features" (Amir et al.'s ViTExtractor on dino_vits8, patch stride 4) and DINOv2
 * "layer 11 token features" (sd-dino / GeoAware-SC). docs/EVAL.md lists every
 * convention.
 *
 * Weights: the official plain state dicts (torch.save .pth, read by pt_weights, or
 * the same tensors as .safetensors) with their own names; the architecture from a
 * config.json (num_heads is not in the weights) or a named preset. */
#ifndef DHF_EXTRACT_VIT_H
#define DHF_EXTRACT_VIT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/image.h"
#include "extract/sd_params.h"
#include "shim/torch_shim.h"

typedef enum { DHF_VIT_DINO = 0, DHF_VIT_DINOV2 = 1 } dhf_vit_family;

typedef struct {
    char name[64];
    dhf_vit_family family;
    int patch_size;           /* p: the patch convolution's kernel (and native stride) */
    int img_size;             /* the position grid's image size: M = img_size / p */
    int pos_grid;             /* M */
    int embed_dim;            /* C */
    int depth;                /* blocks */
    int num_heads;
    int mlp_hidden;           /* fc1 width */
    double layer_norm_eps;    /* 1e-6 */
    bool layerscale;          /* ls1 / ls2 gamma (DINOv2) */
    double interpolate_offset;/* 0.1: the scale factor (g + offset) / M */
} dhf_vit_config;

/* Named architectures: dino_vits8, dino_vitb8, dino_vits16, dino_vitb16, dinov2_vits14,
 * dinov2_vitb14, dinov2_vitl14, and the tiny random ones of `dhf init-model`
 * (tiny-dino, tiny-dinov2). Error listing them for an unknown name. */
int dhf_vit_preset(const char *name, dhf_vit_config *out);
/* NULL-terminated list of the preset names. */
const char *const *dhf_vit_preset_names(void);
/* A config.json as the fixtures and `dhf init-model` write it ("family", "patch_size",
 * "img_size", "embed_dim", "depth", "num_heads", ...). Unsupported settings (registers,
 * antialiased interpolation, SwiGLU) are errors naming the file and the field. */
int dhf_vit_config_load(const char *path, dhf_vit_config *out);
/* The config.json text of a config (malloc'd). */
char *dhf_vit_config_json(const dhf_vit_config *c);

typedef struct dhf_vit dhf_vit;

/* Builds the network from params (FILE: names and shapes checked, every tensor of the
 * file used except mask_token; GENERATE: writes seeded random weights). */
int dhf_vit_build(const dhf_vit_config *cfg, dhf_params *p, dhf_vit **out);
/* A weights file (.pth / .pt / .bin: torch.save state dict; else safetensors). */
int dhf_vit_load(const dhf_vit_config *cfg, const char *weights, dhf_vit **out);
void dhf_vit_free(dhf_vit *v);
const dhf_vit_config *dhf_vit_config_of(const dhf_vit *v);

/* What to take out of the network. */
typedef struct {
    int layer;                /* 0-based block index (DINO 9, DINOv2 11) */
    int stride;               /* patch convolution stride (DINO: 8 native or 4; DINOv2: 14) */
    bool keys;                /* the attention keys of blocks[layer] (DINO's facet) instead
                                 of its output tokens (DINOv2's) */
    bool final_norm;          /* tokens through the final LayerNorm (not the baselines') */
} dhf_vit_opts;

/* Debug tensors of a forward (NEW handles, optional): the interpolated position
 * embedding [1, T, C], the tokens entering blocks[0], the outputs of blocks[0..1]. */
typedef struct {
    dhf_tensor pos_embed, tokens_in, block00, block01;
} dhf_vit_debug;

/* input [1, 3, H, W] float32 (normalised) -> NEW *features [C, h, w], h = 1 + (H - p) /
 * stride (DINO keys: channel d * heads + head, Amir's order). dbg may be NULL. */
int dhf_vit_features(const dhf_vit *v, dhf_tensor input, const dhf_vit_opts *o,
                     dhf_tensor *features, dhf_vit_debug *dbg);

/* The token grid of an H x W input: 1 + (side - p) / stride. */
void dhf_vit_grid(const dhf_vit_config *c, int stride, int height, int width, int *gh, int *gw);

/* The official position-embedding interpolation: pos [1 + M*M, C] (row 0 = CLS) to
 * out [1 + gh*gw, C] for an image of height x width: used as stored when gh*gw == M*M
 * and height == width, else bicubic (A = -0.75, align_corners False, no antialias)
 * sampled at the scale factor (g + offset) / M. Pure C, double arithmetic. */
void dhf_vit_interpolate_pos(const float *pos, int M, int C, int gh, int gw, int height,
                             int width, double offset, float *out);

/* The extractors' preprocessing of an 8-bit RGB image: the shorter side to load_size
 * with Pillow LANCZOS (the longer int(load_size * long / short)), for DINOv2 then a
 * second LANCZOS resize to multiples of 14; *resized (allocated) is that image, and
 * *input (malloc'd, [3, H, W] float32) it normalised with ImageNet's mean and std in
 * float32. */
int dhf_vit_preprocess(const dhf_image *src, dhf_vit_family family, int patch_size,
                       int load_size, dhf_image *resized, float **input);

#endif
