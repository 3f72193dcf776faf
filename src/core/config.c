/* config.c — owns the config schema (dhf_config_keys, one row per field of
 * dhf_config) and everything the schema drives: defaults, YAML loading from
 * files, strings and `--set` overrides with file:line:column messages,
 * validation, resolved YAML / JSON output and the Markdown key reference that
 * docs/CONFIG.md is generated from. */
#include "core/config.h"

#include "core/error.h"
#include "core/fsutil.h"

#include <cjson/cJSON.h>
#include <yaml.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Schema                                                                    */
/* ------------------------------------------------------------------------ */

#define S_RUN "Run"
#define S_MODEL "Diffusion model and feature extraction"
#define S_TRAIN "Aggregation network and training"
#define S_DATA "Data"
#define S_EVAL "Evaluation"
#define S_VIT "ViT baselines (dhf eval --provider dino | dinov2)"
#define S_TABLE1 "Table 1 (dhf table1)"

#define FIELD(f) .offset = offsetof(dhf_config, f), .size = sizeof(((dhf_config *)0)->f)
#define ROW(p, t, f, d, lo, hi, excl, ch, sec, txt)                                  \
    { .path = p, .type = t, FIELD(f), .def = d, .min = lo, .max = hi,                 \
      .min_exclusive = excl, .choices = ch, .section = sec, .doc = txt }
#define K_BOOL(p, f, d, sec, txt) ROW(p, DHF_CFG_T_BOOL, f, d, 0, 0, false, NULL, sec, txt)
#define K_INT(p, f, d, lo, hi, sec, txt) ROW(p, DHF_CFG_T_INT, f, d, lo, hi, false, NULL, sec, txt)
#define K_INT64(p, f, d, sec, txt) \
    ROW(p, DHF_CFG_T_INT64, f, d, -INFINITY, INFINITY, false, NULL, sec, txt)
#define K_DBL(p, f, d, lo, hi, sec, txt) ROW(p, DHF_CFG_T_DOUBLE, f, d, lo, hi, false, NULL, sec, txt)
/* (lo, hi]: strictly above lo */
#define K_DBL_GT(p, f, d, lo, hi, sec, txt) ROW(p, DHF_CFG_T_DOUBLE, f, d, lo, hi, true, NULL, sec, txt)
#define K_STR(p, f, d, sec, txt) ROW(p, DHF_CFG_T_STRING, f, d, 0, 0, false, NULL, sec, txt)
#define K_ENUM(p, f, d, ch, sec, txt) ROW(p, DHF_CFG_T_ENUM, f, d, 0, 0, false, ch, sec, txt)
#define K_ILIST(p, f, d, lo, hi, sec, txt) ROW(p, DHF_CFG_T_INT_LIST, f, d, lo, hi, false, NULL, sec, txt)
#define K_DLIST_GT(p, f, d, lo, hi, sec, txt) \
    ROW(p, DHF_CFG_T_DOUBLE_LIST, f, d, lo, hi, true, NULL, sec, txt)

/* Row order is the order of the resolved YAML, the JSON and the docs. Defaults
 * are YAML text so that the docs, `--set` and files all share one parser. */
const dhf_cfg_key dhf_config_keys[] = {
    /* ---- run ---- */
    K_STR("run_name", run_name, "\"\"", S_RUN,
          "Name of the run folder under output_dir; \"\" derives it from the config file "
          "name and the start time."),
    K_STR("output_dir", output_dir, "checkpoints", S_RUN,
          "Folder that holds one sub-folder per run (<output_dir>/<run_name>/)."),
    K_INT64("seed", seed, "0", S_RUN,
            "Random seed for diffusion noise, network initialisation and data order."),
    K_INT("threads", threads, "0", 0, 4096, S_RUN, "CPU threads; 0 = number of cores."),
    K_STR("device", device, "cpu", S_RUN, "Compute device: cpu, cuda or cuda:N."),

    /* ---- diffusion model and extraction ---- */
    K_STR("model_id", model_id, "\"\"", S_MODEL,
          "Stable Diffusion model as a diffusers folder (unet/, vae/, text_encoder/, "
          "tokenizer/, scheduler/)."),
    K_ENUM("diffusion_mode", diffusion_mode, "inversion", "inversion|generation", S_MODEL,
           "inversion: DDIM-invert the real image and collect features along the inversion "
           "trajectory (the paper's setting for real images); generation: run the "
           "denoising process from noise."),
    K_INT("num_timesteps", num_timesteps, "50", 1, 1000, S_MODEL,
          "Number of DDIM steps; timestep labels are 0..num_timesteps-1."),
    K_ILIST("save_timestep", save_timestep, "[49, 45, 40, 35, 30, 25, 20, 15, 10, 5, 0]", 0, 999,
            S_MODEL,
            "Timestep labels whose UNet features are kept, in storage order; each label is "
            "in 0..num_timesteps-1 and appears once."),
    K_STR("prompt", prompt, "\"\"", S_MODEL, "Text prompt that conditions the UNet (\"\" = empty prompt)."),
    K_STR("negative_prompt", negative_prompt, "\"\"", S_MODEL,
          "Negative prompt, used only with classifier-free guidance."),
    K_DBL("guidance_scale", guidance_scale, "-1", -1, 100, S_MODEL,
          "Classifier-free guidance scale; -1 = no guidance (the paper's setting)."),
    K_STR("prompt_embeds", prompt_embeds, "\"\"", S_MODEL,
          "Optional safetensors file with encoder_hidden_states that replace the encoded "
          "prompt (\"\" = encode prompt with the text encoder)."),
    K_INT("diffusion_resolution", diffusion_resolution, "512", 8, 4096, S_MODEL,
          "Side of the square image given to the VAE; a multiple of 8."),
    K_ENUM("image_resize", image_resize, "pil", "pil|torch|pil_load", S_MODEL,
           "How a real image reaches diffusion_resolution: pil = the paper's "
           "extract_hyperfeatures.py, Pillow's Image.BILINEAR on the 8-bit image "
           "(antialiased when shrinking, byte-exact to Pillow 9.4), then ToTensor and "
           "x * 2 - 1; torch = x * 2 - 1 first, then torch bilinear interpolation on floats "
           "(align_corners false, no antialiasing), the interpolate of the paper's extractor "
           "alone; pil_load = the paper's train_hyperfeatures.py (validate and train: "
           "load_image_pair), Pillow BILINEAR to load_resolution x load_resolution first, "
           "then that torch interpolate up to diffusion_resolution."),
    K_ENUM("vae_latent", vae_latent, "sample", "sample|mean", S_MODEL,
           "Latent taken from the VAE posterior: sample (the default: the paper's extractor "
           "samples latent_dist, here with a seed derived from seed and the image key, so "
           "runs repeat) or its mean (deterministic, no noise)."),
    K_ENUM("dtype", dtype, "float32", "float32|float16|bfloat16", S_MODEL,
           "Compute dtype of the diffusion model: float32 (the reference), float16 (CUDA; "
           "the authors' GPU runs use fp16 autocast) or bfloat16 (weights and activations "
           "in bf16, float32 accumulation inside the kernels; on CPU it needs the "
           "AVX512-BF16 instructions and is refused without them). Measured deviation "
           "from float32: BENCHMARKS.md (Extraction)."),
    K_ENUM("extract_kernels", extract_kernels, "onednn", "onednn|libtorch", S_MODEL,
           "CPU kernels of the extractor (convolutions, Linear layers, GroupNorm, "
           "attention): onednn (channels-last activations, oneDNN convolutions and "
           "products on packed weights, fused GroupNorm+SiLU, AVX-512/AVX512-BF16) or "
           "libtorch (libtorch's ops, the reference the parity tests hold both to). "
           "Results agree to float rounding; CUDA always uses libtorch."),
    K_STR("cache_path", cache_path, "data/features.h5", S_MODEL,
          "HDF5 file that caches extracted features."),
    K_ENUM("cache_dtype", cache_dtype, "float16", "float16|float32", S_MODEL,
           "Dtype of the features stored in the cache."),
    K_INT("cache_compression", cache_compression, "0", 0, 9, S_MODEL,
          "Cache compression: 0 = off, 1..9 = deflate level (with shuffle)."),
    K_BOOL("flip_timesteps", flip_timesteps, "false", S_MODEL,
           "Reverse save_timestep when the model is loaded (as the paper's load_models "
           "does), for checkpoints trained with the opposite order."),

    /* ---- aggregation network and training ---- */
    K_INT("projection_dim", projection_dim, "384", 4, 65536, S_TRAIN,
          "P: channels of each bottleneck projection in the aggregation network; a multiple "
          "of 4."),
    K_INT("output_resolution", output_resolution, "64", 1, 1024, S_TRAIN,
          "R: side of the aggregated feature map (hyperfeatures)."),
    K_INT("load_resolution", load_resolution, "224", 8, 4096, S_TRAIN,
          "Side of the square image used for training and evaluation; keypoints are "
          "scaled to it."),
    K_INT("batch_size", batch_size, "1", 1, 1024, S_TRAIN, "Image pairs per optimiser step."),
    K_DBL_GT("lr", lr, "1e-3", 0, 1, S_TRAIN, "Learning rate of the AdamW optimiser."),
    K_DBL("weight_decay", weight_decay, "0", 0, 1, S_TRAIN, "AdamW weight decay."),
    K_INT("max_epochs", max_epochs, "1", 1, 1000000, S_TRAIN, "Number of training epochs."),
    K_INT("max_steps_per_epoch", max_steps_per_epoch, "5000", 1, INFINITY, S_TRAIN,
          "Optimiser steps per epoch."),
    K_INT("val_every_n_steps", val_every_n_steps, "1000", 1, INFINITY, S_TRAIN,
          "Validate (and maybe checkpoint) every this many steps."),
    K_INT("checkpoint_every_n_steps", checkpoint_every_n_steps, "100", 0, INFINITY, S_TRAIN,
          "Save last.safetensors (for --resume) every this many steps, besides every "
          "validation and the final step; 0 = only then."),
    K_DBL_GT("pck_threshold", pck_threshold, "0.1", 0, 1, S_TRAIN,
             "PCK alpha of the validation metric that picks the best checkpoint."),
    K_ENUM("aggregation_order", aggregation_order, "fast", "fast|straightforward", S_TRAIN,
           "Order of operations in the weighted sum over layers and timesteps; both give "
           "the same result up to rounding, fast is cheaper."),
    K_ENUM("aggregation_kernels", aggregation_kernels, "auto", "auto|onednn|libtorch", S_TRAIN,
           "Who runs a training step of the fast order on the CPU: onednn = the "
           "hand-written forward and backward over oneDNN convolutions (src/engine/"
           "fastnet.c), libtorch = libtorch autograd; auto = onednn when dhf was built with "
           "oneDNN, else libtorch. Same gradients up to float32 rounding; CUDA always uses "
           "libtorch."),
    K_ENUM("aggregation_conv_algorithm", aggregation_conv_algorithm, "auto",
           "auto|winograd|direct", S_TRAIN,
           "3x3 convolutions of the oneDNN step: winograd (F(4x4, 3x3), ~2x fewer "
           "multiplications, float32 rounding differs slightly from direct) or direct; "
           "auto = winograd where oneDNN has it for this CPU."),
    K_ENUM("aggregation_conv1x1", aggregation_conv1x1, "auto", "auto|own|onednn", S_TRAIN,
           "1x1 convolutions of the oneDNN step (conv1 + shortcut and conv3 forward, conv3 "
           "backward-data): own = dhf's AVX-512 register-tiled kernels (src/engine/"
           "conv1x1.c, with GroupNorm's sums fused into conv3), onednn = oneDNN's jit_1x1; "
           "auto = own where the CPU has AVX-512F. Same results up to float32 rounding."),
    K_ENUM("mixed_precision", mixed_precision, "auto", "auto|off|bf16|fp16", S_TRAIN,
           "Dtype of the bottleneck convolutions in training and evaluation (inputs and "
           "weights cast, outputs back to float32; GroupNorm, loss and parameters stay "
           "float32): auto = bf16 on CUDA, off (float32) on the CPU. fp16 has no loss "
           "scaling: prefer bf16."),
    K_INT("recompute_layers", recompute_layers, "0", 0, 64, S_TRAIN,
          "Memory-lean training step when it runs on libtorch autograd (aggregation_kernels "
          "libtorch, a build without oneDNN, or CUDA; fast order): this many layers, the "
          "cheapest forward first, drop their autograd graph after the forward and rebuild "
          "it in the backward. Same gradients; costs those layers' forward twice and saves "
          "about their activations. 0 = plain autograd; the oneDNN step ignores it."),
    K_ENUM("checkpoint_metric", checkpoint_metric, "pck_bbox", "pck_img|pck_bbox", S_TRAIN,
           "Validation PCK that picks the best checkpoint: threshold relative to the image "
           "size (pck_img) or to the bounding box size (pck_bbox)."),

    /* ---- data ---- */
    K_ENUM("dataset", dataset, "spair", "spair|cub", S_DATA, "Dataset format."),
    K_STR("data_root", data_root, "data/SPair-71k", S_DATA, "Dataset folder."),
    K_STR("train_path", train_path, "\"\"", S_DATA,
          "Pair list JSON for training; \"\" = the official trn split."),
    K_STR("val_path", val_path, "\"\"", S_DATA,
          "Pair list JSON for validation; \"\" = a subset of the val split "
          "(val_pairs_per_category per category)."),
    K_STR("test_path", test_path, "\"\"", S_DATA,
          "Pair list JSON for evaluation; \"\" = the split below."),
    K_ENUM("split", split, "test", "trn|val|test", S_DATA, "Split evaluated when test_path is \"\"."),
    K_INT("pairs_per_category", pairs_per_category, "0", 0, INFINITY, S_DATA,
          "Pairs drawn per category from the split; 0 = all pairs."),
    K_INT64("subset_seed", subset_seed, "0", S_DATA, "Seed that draws the per-category subsets."),
    K_INT("val_pairs_per_category", val_pairs_per_category, "20", 0, INFINITY, S_DATA,
          "Validation pairs per category; 0 = the whole val split."),
    K_STR("image_list", image_list, "\"\"", S_DATA,
          "dhf extract only: a text file of image paths (one per line, '#' comments) to "
          "cache instead of the dataset's images; \"\" = the images of the selected pairs."),

    /* ---- evaluation ---- */
    K_DLIST_GT("eval.alphas", alphas, "[0.01, 0.05, 0.1, 0.15]", 0, 1, S_EVAL,
               "PCK thresholds reported by evaluation."),
    K_ENUM("eval.resize", resize, "stretch", "stretch|pad", S_EVAL,
           "How images reach load_resolution: stretch to a square, or keep the aspect ratio "
           "and pad."),
    K_ENUM("eval.matcher", matcher, "argmax", "argmax|soft_argmax|window_soft_argmax", S_EVAL,
           "How a target location is read from the similarity map: its argmax, a soft "
           "argmax over the whole map, or a soft argmax in a window around the argmax."),
    K_DBL_GT("eval.softmax_temperature", softmax_temperature, "0.04", 0, INFINITY, S_EVAL,
             "Softmax temperature of the soft-argmax matchers."),
    K_INT("eval.window_radius", window_radius, "5", 0, 1024, S_EVAL,
          "Window radius, in pixels of the load_resolution similarity map, of window_soft_argmax."),
    K_BOOL("eval.dump_predictions", dump_predictions, "true", S_EVAL,
           "Write every predicted keypoint next to the evaluation report."),

    /* ---- ViT baselines ---- */
    K_STR("vit.dino_model", vit_dino_model, "dino_vits8", S_VIT,
          "DINO architecture: a preset (dino_vits8, dino_vitb8, dino_vits16, dino_vitb16, "
          "tiny-dino) or a folder with config.json and model.safetensors / model.pth. The "
          "paper's DINO row: dino_vits8."),
    K_STR("vit.dino_weights", vit_dino_weights, "\"\"", S_VIT,
          "DINO weights: the official dino_deitsmall8_pretrain.pth (a plain state dict) or a "
          ".safetensors copy; \"\" = the model folder's own file."),
    K_INT("vit.dino_layer", vit_dino_layer, "9", 0, 1000, S_VIT,
          "Block whose attention keys are the DINO descriptors, 0-based as Amir et al.'s "
          "extractor counts (9: the paper's \"layer 9 key features\")."),
    K_INT("vit.dino_stride", vit_dino_stride, "4", 1, 64, S_VIT,
          "Patch-convolution stride of DINO (Amir et al.: 4 for dino_vits8; 8 is the "
          "native stride)."),
    K_INT("vit.dino_load_size", vit_dino_load_size, "224", 8, 4096, S_VIT,
          "Shorter image side for DINO (Pillow LANCZOS; Amir et al.: 224)."),
    K_STR("vit.dinov2_model", vit_dinov2_model, "dinov2_vitb14", S_VIT,
          "DINOv2 architecture: a preset (dinov2_vits14, dinov2_vitb14, dinov2_vitl14, "
          "tiny-dinov2) or a folder with config.json and weights. sd-dino and GeoAware-SC "
          "use dinov2_vitb14."),
    K_STR("vit.dinov2_weights", vit_dinov2_weights, "\"\"", S_VIT,
          "DINOv2 weights: the official dinov2_vitb14_pretrain.pth (or the model's) or a "
          ".safetensors copy; \"\" = the model folder's own file."),
    K_INT("vit.dinov2_layer", vit_dinov2_layer, "11", 0, 1000, S_VIT,
          "Block whose output tokens are the DINOv2 descriptors, 0-based (11: the paper's "
          "\"layer 11 token features\")."),
    K_INT("vit.dinov2_load_size", vit_dinov2_load_size, "840", 14, 4096, S_VIT,
          "Shorter image side for DINOv2 (Pillow LANCZOS, then a second LANCZOS resize to "
          "multiples of 14). sd-dino and GeoAware-SC evaluate at 840."),
    K_BOOL("vit.dinov2_final_norm", vit_dinov2_final_norm, "false", S_VIT,
           "Pass the DINOv2 tokens through the final LayerNorm (get_intermediate_layers' "
           "default; not what sd-dino / GeoAware-SC use)."),

    /* ---- dhf table1 ---- */
    K_STR("table1.model_sd21", t1_model_sd21, "\"\"", S_TABLE1,
          "Diffusers folder of SD-2.1-base for the Ours-SDv2-1 row (model_id is the SD-1.5 "
          "model of every other row); \"\" = that row is not run."),
    K_STR("table1.cub_root", t1_cub_root, "data/CUB_200_2011", S_TABLE1,
          "CUB-200-2011 folder for the CUB column (the SPair-trained networks, no CUB "
          "training); \"\" = no CUB column."),
    K_INT("table1.cub_pairs_per_category", t1_cub_pairs_per_category, "10", 0, INFINITY,
          S_TABLE1,
          "CUB test pairs drawn per class (seed subset_seed); 0 = every candidate pair. A "
          "dhf default (about 2,000 pairs), not the paper's CUB pair selection, which dhf "
          "does not reproduce: set it to your protocol."),
    K_STR("table1.test_pairs", t1_test_pairs,
          "data/dhf-annotations/spair_71k_test-360.json", S_TABLE1,
          "SPair-71k pairs every row is evaluated on: the paper's 360-pair test subset, "
          "another pair list, or full (all test pairs, thinned by pairs_per_category)."),
    K_STR("table1.out_dir", t1_out_dir, "\"\"", S_TABLE1,
          "Output folder of dhf table1 (caches, runs, evaluations, table1.md/json); \"\" = "
          "<output_dir>/table1."),
    K_ENUM("table1.checkpoint", t1_checkpoint, "best", "best|last", S_TABLE1,
           "Which checkpoint of each trained network is evaluated: best (by "
           "checkpoint_metric on the val pairs) or last."),
    K_INT("table1.bootstrap", t1_bootstrap, "2000", 1, 1000000, S_TABLE1,
          "Pair resamples of every 95% bootstrap interval (each PCK and each relation)."),
    K_INT64("table1.bootstrap_seed", t1_bootstrap_seed, "0", S_TABLE1,
            "Seed of the bootstrap resamples."),
    K_DBL("table1.approx_points", t1_approx_points, "3", 0, 100, S_TABLE1,
          "A stated relation \"difference ≈ d\" holds on this run when the difference is "
          "within this many PCK points of d (\"comparable\" is ≈ 0)."),
    { .path = NULL },
};

#define DHF_NKEYS (sizeof dhf_config_keys / sizeof dhf_config_keys[0] - 1)
#define PATH_CAP 256

const dhf_cfg_key *dhf_config_find_key(const char *path)
{
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++)
        if (strcmp(k->path, path) == 0)
            return k;
    return NULL;
}

/* A group is a dotted prefix of some key ("eval"). */
static bool is_group(const char *path)
{
    size_t n = strlen(path);
    if (n == 0)
        return false;
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++)
        if (strncmp(k->path, path, n) == 0 && k->path[n] == '.')
            return true;
    return false;
}

static void *field_ptr(dhf_config *c, const dhf_cfg_key *k) { return (char *)c + k->offset; }
static const void *cfield_ptr(const dhf_config *c, const dhf_cfg_key *k)
{
    return (const char *)c + k->offset;
}

static bool is_integer_type(const dhf_cfg_key *k)
{
    return k->type == DHF_CFG_T_INT || k->type == DHF_CFG_T_INT64 || k->type == DHF_CFG_T_INT_LIST;
}

static bool in_range(const dhf_cfg_key *k, double x)
{
    if (isnan(x))
        return false;
    if (isfinite(k->min) && (k->min_exclusive ? !(x > k->min) : !(x >= k->min)))
        return false;
    if (isfinite(k->max) && !(x <= k->max))
        return false;
    return true;
}

static void fmt_bound(char *buf, size_t n, double x, bool integer)
{
    if (integer)
        snprintf(buf, n, "%.0f", x);
    else
        snprintf(buf, n, "%g", x);
}

/* "1..1000", "(0, 1]", ">= 0", "> 0"; NULL when unbounded. */
static const char *range_text(const dhf_cfg_key *k, char *buf, size_t n)
{
    char lo[64], hi[64];
    bool integer = is_integer_type(k);
    fmt_bound(lo, sizeof lo, k->min, integer);
    fmt_bound(hi, sizeof hi, k->max, integer);
    bool has_lo = isfinite(k->min), has_hi = isfinite(k->max);
    if (has_lo && has_hi) {
        if (k->min_exclusive)
            snprintf(buf, n, "(%s, %s]", lo, hi);
        else
            snprintf(buf, n, "%s..%s", lo, hi);
    } else if (has_lo) {
        snprintf(buf, n, "%s %s", k->min_exclusive ? ">" : ">=", lo);
    } else if (has_hi) {
        snprintf(buf, n, "<= %s", hi);
    } else {
        return NULL;
    }
    return buf;
}

/* position of s in "a|b|c", or -1 */
static int choice_pos(const char *choices, const char *s)
{
    size_t n = strlen(s);
    const char *p = choices;
    for (int i = 0; *p; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, s, n) == 0)
            return i;
        if (!bar)
            break;
        p = bar + 1;
    }
    return -1;
}

static bool choice_ok(const char *choices, const char *s) { return choice_pos(choices, s) >= 0; }

int dhf_config_choice(const char *key, const char *s)
{
    const dhf_cfg_key *k = dhf_config_find_key(key);
    if (!k || k->type != DHF_CFG_T_ENUM)
        return dhf_err_set("config: '%s' is not a key with choices", key);
    const int i = s ? choice_pos(k->choices, s) : -1;
    if (i < 0)
        return dhf_err_set("%s: expected one of %s, got \"%s\"", key, k->choices,
                           s ? s : "(null)");
    return i;
}

/* ------------------------------------------------------------------------ */
/* Growable string (values are formatted once for YAML, JSON and docs)       */
/* ------------------------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }

static void sb_printf(sbuf *b, const char *fmt, ...) DHF_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_putn(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_putn(b, big, (size_t)n);
    free(big);
}

static const char *sb_str(const sbuf *b) { return b->p ? b->p : ""; }

/* ------------------------------------------------------------------------ */
/* YAML scalars                                                              */
/* ------------------------------------------------------------------------ */

typedef enum { SC_NULL, SC_BOOL, SC_INT, SC_FLOAT, SC_STRING } scalar_kind;

static bool ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
            return false;
    return *a == *b;
}

static bool is_null_word(const char *s)
{
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* YAML 1.1 booleans; *value gets the meaning. */
static bool bool_word(const char *s, bool *value)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (ieq(s, yes[i])) {
            *value = true;
            return true;
        }
        if (ieq(s, no[i])) {
            *value = false;
            return true;
        }
    }
    return false;
}

static size_t skip_digits(const char *s)
{
    size_t i = 0;
    while (isdigit((unsigned char)s[i]))
        i++;
    return i;
}

static bool match_int(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    size_t d = skip_digits(s);
    return d > 0 && s[d] == '\0';
}

/* Decimal floats only (no hex, inf or nan, which strtod would also take). */
static bool match_float(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    size_t whole = skip_digits(s);
    s += whole;
    size_t frac = 0;
    bool dot = false;
    if (*s == '.') {
        dot = true;
        s++;
        frac = skip_digits(s);
        s += frac;
    }
    if (whole + frac == 0)
        return false;
    bool exp = false;
    if (*s == 'e' || *s == 'E') {
        exp = true;
        s++;
        if (*s == '+' || *s == '-')
            s++;
        size_t e = skip_digits(s);
        if (e == 0)
            return false;
        s += e;
    }
    return *s == '\0' && (dot || exp);
}

static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* Quoted scalars are always strings: `"5"` is not a number. */
static scalar_kind classify(const yaml_node_t *n)
{
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE &&
        n->data.scalar.style != YAML_ANY_SCALAR_STYLE)
        return SC_STRING;
    const char *s = sval(n);
    bool b;
    if (is_null_word(s))
        return SC_NULL;
    if (bool_word(s, &b))
        return SC_BOOL;
    if (match_int(s))
        return SC_INT;
    if (match_float(s))
        return SC_FLOAT;
    return SC_STRING;
}

static bool is_null_node(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && classify(n) == SC_NULL;
}

/* What a node is, for "got ..." in messages. */
static const char *describe(const yaml_node_t *n, char *buf, size_t cap)
{
    if (n->type == YAML_MAPPING_NODE)
        return "mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "list";
    if (n->type != YAML_SCALAR_NODE)
        return "nothing";
    const char *s = sval(n);
    switch (classify(n)) {
    case SC_NULL:
        return "null";
    case SC_BOOL:
        snprintf(buf, cap, "boolean %s", s);
        return buf;
    case SC_INT:
    case SC_FLOAT:
        snprintf(buf, cap, "%.40s", s);
        return buf;
    case SC_STRING:
        break;
    }
    size_t len = n->data.scalar.length;
    snprintf(buf, cap, "string '%.60s%s'", s, len > 60 ? "..." : "");
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Applying YAML nodes to the struct                                         */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *origin;       /* file path, "<string>" or "--set k=v" */
    bool with_marks;          /* print line:column after the origin */
    yaml_document_t *doc;
    bool seen[DHF_NKEYS];     /* a key may be set once per document */
    yaml_mark_t seen_at[DHF_NKEYS];
} loader;

static int fail_at(const loader *ld, yaml_mark_t m, const char *key, const char *fmt, ...)
    DHF_PRINTF(4, 5);
static int fail_at(const loader *ld, yaml_mark_t m, const char *key, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char loc[512];
    if (ld->with_marks)
        snprintf(loc, sizeof loc, "%.480s:%zu:%zu", ld->origin, m.line + 1, m.column + 1);
    else
        snprintf(loc, sizeof loc, "%.480s", ld->origin);
    if (key)
        return dhf_err_set("%s: key '%s': %s", loc, key, msg);
    return dhf_err_set("%s: %s", loc, msg);
}

static int check_tag(const loader *ld, const char *label, const yaml_node_t *n)
{
    const char *want = n->type == YAML_SCALAR_NODE     ? YAML_DEFAULT_SCALAR_TAG
                       : n->type == YAML_SEQUENCE_NODE ? YAML_DEFAULT_SEQUENCE_TAG
                                                       : YAML_DEFAULT_MAPPING_TAG;
    const char *tag = (const char *)n->tag;
    const char *std = "tag:yaml.org,2002:";
    if (tag && strcmp(tag, want) != 0) {
        bool is_std = strncmp(tag, std, strlen(std)) == 0;
        return fail_at(ld, n->start_mark, label, "explicit YAML tags are not supported (got %s%.100s)",
                       is_std ? "!!" : "", is_std ? tag + strlen(std) : tag);
    }
    return 0;
}

static int node_int(const loader *ld, const dhf_cfg_key *k, const char *label,
                    const yaml_node_t *n, bool need_32bit, int64_t *out)
{
    char got[128], range[160];
    if (check_tag(ld, label, n) != 0)
        return -1;
    if (n->type != YAML_SCALAR_NODE || classify(n) != SC_INT)
        return fail_at(ld, n->start_mark, label, "expected an integer, got %s",
                       describe(n, got, sizeof got));
    errno = 0;
    long long v = strtoll(sval(n), NULL, 10);
    const char *r = range_text(k, range, sizeof range);
    if (errno == ERANGE)
        return fail_at(ld, n->start_mark, label, "expected %s, got %.40s",
                       r ? r : "a 64-bit integer", sval(n));
    if (!in_range(k, (double)v))
        return fail_at(ld, n->start_mark, label, "expected %s, got %.40s", r, sval(n));
    if (need_32bit && (v < INT_MIN || v > INT_MAX))
        return fail_at(ld, n->start_mark, label, "expected a 32-bit integer, got %.40s", sval(n));
    *out = (int64_t)v;
    return 0;
}

static int node_double(const loader *ld, const dhf_cfg_key *k, const char *label,
                       const yaml_node_t *n, double *out)
{
    char got[128], range[160];
    if (check_tag(ld, label, n) != 0)
        return -1;
    scalar_kind kind = n->type == YAML_SCALAR_NODE ? classify(n) : SC_STRING;
    if (n->type != YAML_SCALAR_NODE || (kind != SC_INT && kind != SC_FLOAT))
        return fail_at(ld, n->start_mark, label, "expected a number, got %s",
                       describe(n, got, sizeof got));
    double v = strtod(sval(n), NULL);
    if (!isfinite(v))
        return fail_at(ld, n->start_mark, label, "expected a finite number, got %.40s", sval(n));
    if (!in_range(k, v))
        return fail_at(ld, n->start_mark, label, "expected %s, got %.40s",
                       range_text(k, range, sizeof range), sval(n));
    *out = v;
    return 0;
}

static int apply_string(const loader *ld, const dhf_cfg_key *k, const yaml_node_t *n,
                        dhf_config *c)
{
    char got[128];
    if (n->type != YAML_SCALAR_NODE) {
        if (k->type == DHF_CFG_T_ENUM)
            return fail_at(ld, n->start_mark, k->path, "expected one of %s, got %s", k->choices,
                           describe(n, got, sizeof got));
        return fail_at(ld, n->start_mark, k->path, "expected a string, got %s",
                       describe(n, got, sizeof got));
    }
    const char *s = sval(n);
    size_t len = n->data.scalar.length;
    if (classify(n) == SC_NULL) {
        s = "";
        len = 0;
    }
    if (memchr(s, '\0', len))
        return fail_at(ld, n->start_mark, k->path, "expected a string without NUL characters");
    if (len >= k->size)
        return fail_at(ld, n->start_mark, k->path,
                       "expected a string of at most %zu bytes, got %zu bytes", k->size - 1, len);
    if (k->type == DHF_CFG_T_ENUM && !choice_ok(k->choices, s))
        return fail_at(ld, n->start_mark, k->path, "expected one of %s, got %s", k->choices,
                       len ? describe(n, got, sizeof got) : "an empty value");
    char *dst = field_ptr(c, k);
    memset(dst, 0, k->size);
    memcpy(dst, s, len);
    return 0;
}

static int apply_list(const loader *ld, const dhf_cfg_key *k, const yaml_node_t *n, dhf_config *c)
{
    char got[128], label[PATH_CAP + 32];
    bool ints = k->type == DHF_CFG_T_INT_LIST;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail_at(ld, n->start_mark, k->path, "expected a list of %s, got %s",
                       ints ? "integers" : "numbers", describe(n, got, sizeof got));
    long count = (long)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > DHF_CFG_LIST)
        return fail_at(ld, n->start_mark, k->path, "expected at most %d items, got %ld",
                       DHF_CFG_LIST, count);
    dhf_int_list il;
    dhf_double_list dl;
    memset(&il, 0, sizeof il);
    memset(&dl, 0, sizeof dl);
    for (long i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, n->data.sequence.items.start[i]);
        snprintf(label, sizeof label, "%s[%ld]", k->path, i);
        if (ints) {
            if (node_int(ld, k, label, item, false, &il.v[i]) != 0)
                return -1;
        } else if (node_double(ld, k, label, item, &dl.v[i]) != 0) {
            return -1;
        }
    }
    il.n = dl.n = (int)count;
    if (ints)
        memcpy(field_ptr(c, k), &il, sizeof il);
    else
        memcpy(field_ptr(c, k), &dl, sizeof dl);
    return 0;
}

static int apply_value(const loader *ld, const dhf_cfg_key *k, const yaml_node_t *n, dhf_config *c)
{
    char got[128];
    if (check_tag(ld, k->path, n) != 0)
        return -1;
    switch (k->type) {
    case DHF_CFG_T_BOOL: {
        bool b;
        if (n->type != YAML_SCALAR_NODE || classify(n) != SC_BOOL || !bool_word(sval(n), &b))
            return fail_at(ld, n->start_mark, k->path,
                           "expected a boolean (true/false/yes/no/on/off), got %s",
                           describe(n, got, sizeof got));
        *(bool *)field_ptr(c, k) = b;
        return 0;
    }
    case DHF_CFG_T_INT: {
        int64_t v;
        if (node_int(ld, k, k->path, n, true, &v) != 0)
            return -1;
        *(int *)field_ptr(c, k) = (int)v;
        return 0;
    }
    case DHF_CFG_T_INT64:
        return node_int(ld, k, k->path, n, false, (int64_t *)field_ptr(c, k));
    case DHF_CFG_T_DOUBLE:
        return node_double(ld, k, k->path, n, (double *)field_ptr(c, k));
    case DHF_CFG_T_STRING:
    case DHF_CFG_T_ENUM:
        return apply_string(ld, k, n, c);
    case DHF_CFG_T_INT_LIST:
    case DHF_CFG_T_DOUBLE_LIST:
        return apply_list(ld, k, n, c);
    }
    return fail_at(ld, n->start_mark, k->path, "internal error: unknown key type");
}

/* Case-insensitive edit distance for "did you mean"; names are short. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    if (na > 127 || nb > 127)
        return (size_t)-1;
    size_t prev[128], cur[128];
    for (size_t j = 0; j <= nb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) !=
                                        tolower((unsigned char)b[j - 1]));
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (nb + 1) * sizeof prev[0]);
    }
    return prev[nb];
}

static const char *leaf(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? dot + 1 : path;
}

/* Closest key by full path or by last component ("alphas" -> "eval.alphas",
 * "eval.lr" -> "lr"); NULL when nothing is close. */
static const char *suggest_key(const char *path)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++) {
        size_t d = edit_distance(path, k->path);
        size_t dl = edit_distance(leaf(path), leaf(k->path));
        if (dl < d)
            d = dl;
        if (d < best_d) {
            best_d = d;
            best = k->path;
        }
    }
    if (is_group("eval") && edit_distance(path, "eval") < best_d) {
        best_d = edit_distance(path, "eval");
        best = "eval";
    }
    size_t n = strlen(leaf(path));
    size_t limit = n / 3 < 1 ? 1 : (n / 3 > 3 ? 3 : n / 3);
    if (best_d <= limit)
        return best;
    /* a shortened name: "window" -> "eval.window_radius", "max_steps" -> ... */
    for (const dhf_cfg_key *k = dhf_config_keys; n >= 3 && k->path; k++)
        if (strncmp(leaf(k->path), leaf(path), n) == 0)
            return k->path;
    return NULL;
}

static int unknown_key(const loader *ld, yaml_mark_t m, const char *path)
{
    const char *s = suggest_key(path);
    if (s)
        return fail_at(ld, m, NULL, "unknown key '%s'; did you mean '%s'?", path, s);
    return fail_at(ld, m, NULL, "unknown key '%s' (docs/CONFIG.md lists the keys)", path);
}

static int apply_mapping(loader *ld, const yaml_node_t *map, const char *prefix, dhf_config *c);

static int apply_path(loader *ld, const char *path, yaml_mark_t key_mark, const yaml_node_t *v,
                      dhf_config *c)
{
    char got[128];
    const dhf_cfg_key *k = dhf_config_find_key(path);
    if (k) {
        size_t i = (size_t)(k - dhf_config_keys);
        if (ld->seen[i]) {
            if (ld->with_marks)
                return fail_at(ld, key_mark, path, "duplicate key (first set at line %zu, column %zu)",
                               ld->seen_at[i].line + 1, ld->seen_at[i].column + 1);
            return fail_at(ld, key_mark, path, "duplicate key");
        }
        ld->seen[i] = true;
        ld->seen_at[i] = key_mark;
        return apply_value(ld, k, v, c);
    }
    if (is_group(path)) {
        if (is_null_node(v))
            return 0;
        if (v->type != YAML_MAPPING_NODE)
            return fail_at(ld, v->start_mark, path, "expected a mapping of %s.* keys, got %s", path,
                           describe(v, got, sizeof got));
        if (check_tag(ld, path, v) != 0)
            return -1;
        return apply_mapping(ld, v, path, c);
    }
    return unknown_key(ld, key_mark, path);
}

static int apply_mapping(loader *ld, const yaml_node_t *map, const char *prefix, dhf_config *c)
{
    char got[128], path[PATH_CAP];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        const yaml_node_t *vn = yaml_document_get_node(ld->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return fail_at(ld, kn->start_mark, NULL, "expected a key name, got %s",
                           describe(kn, got, sizeof got));
        if (prefix)
            snprintf(path, sizeof path, "%s.%.200s", prefix, sval(kn));
        else
            snprintf(path, sizeof path, "%.200s", sval(kn));
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            const yaml_node_t *qk = yaml_document_get_node(ld->doc, q->key);
            if (qk->type == YAML_SCALAR_NODE && qk->data.scalar.length == kn->data.scalar.length &&
                memcmp(qk->data.scalar.value, kn->data.scalar.value, kn->data.scalar.length) == 0) {
                if (ld->with_marks)
                    return fail_at(ld, kn->start_mark, path,
                                   "duplicate key (first set at line %zu, column %zu)",
                                   qk->start_mark.line + 1, qk->start_mark.column + 1);
                return fail_at(ld, kn->start_mark, path, "duplicate key");
            }
        }
        if (apply_path(ld, path, kn->start_mark, vn, c) != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                   */
/* ------------------------------------------------------------------------ */

static int parser_fail(const loader *ld, const yaml_parser_t *p, const char *key)
{
    char ctx[256] = "";
    if (p->error == YAML_MEMORY_ERROR)
        return dhf_err_set("%s: out of memory while parsing YAML", ld->origin);
    if (p->error == YAML_READER_ERROR)   /* no line:column, only a byte offset */
        return dhf_err_set("%s: %s%s%sinvalid text at byte %zu: %s", ld->origin, key ? "key '" : "",
                           key ? key : "", key ? "': " : "", p->problem_offset,
                           p->problem ? p->problem : "unreadable input");
    if (p->context) {
        if (ld->with_marks)
            snprintf(ctx, sizeof ctx, " (%s at line %zu, column %zu)", p->context,
                     p->context_mark.line + 1, p->context_mark.column + 1);
        else
            snprintf(ctx, sizeof ctx, " (%s)", p->context);
    }
    return fail_at(ld, p->problem_mark, key, "YAML syntax error: %s%s",
                   p->problem ? p->problem : "unknown problem", ctx);
}

/* Parses exactly one YAML document (a second one is an error). `key` names
 * the --set key in messages. */
static int parse_one_document(loader *ld, const char *text, size_t len, const char *key,
                              yaml_document_t *doc)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return dhf_err_set("%s: out of memory while parsing YAML", ld->origin);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, doc)) {
        parser_fail(ld, &parser, key);
        yaml_parser_delete(&parser);
        return -1;
    }
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        parser_fail(ld, &parser, key);
        yaml_parser_delete(&parser);
        yaml_document_delete(doc);
        return -1;
    }
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    if (extra_root) {
        yaml_mark_t m = extra_root->start_mark;
        yaml_document_delete(&extra);
        yaml_parser_delete(&parser);
        yaml_document_delete(doc);
        return fail_at(ld, m, key, "expected one YAML document, found a second one");
    }
    yaml_document_delete(&extra);
    yaml_parser_delete(&parser);
    return 0;
}

static int load_text(dhf_config *c, const char *text, size_t len, const char *origin)
{
    loader *ld = calloc(1, sizeof *ld);
    dhf_config *work = malloc(sizeof *work);
    if (!ld || !work) {
        free(ld);
        free(work);
        return dhf_err_set("%s: out of memory", origin);
    }
    ld->origin = origin;
    ld->with_marks = true;
    yaml_document_t doc;
    int rc = parse_one_document(ld, text, len, NULL, &doc);
    if (rc == 0) {
        ld->doc = &doc;
        memcpy(work, c, sizeof *work);
        const yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (root && !is_null_node(root)) {
            char got[128];
            if (root->type != YAML_MAPPING_NODE)
                rc = fail_at(ld, root->start_mark, NULL,
                             "expected a mapping of config keys at the top level, got %s",
                             describe(root, got, sizeof got));
            else if ((rc = check_tag(ld, NULL, root)) == 0)
                rc = apply_mapping(ld, root, NULL, work);
        }
        if (rc == 0)
            memcpy(c, work, sizeof *c);
        yaml_document_delete(&doc);
    }
    free(work);
    free(ld);
    return rc;
}

int dhf_config_load_string(dhf_config *c, const char *yaml, const char *origin)
{
    return load_text(c, yaml, strlen(yaml), origin ? origin : "<string>");
}

int dhf_config_load_file(dhf_config *c, const char *path)
{
    char *text;
    size_t len;
    if (dhf_read_file(path, &text, &len) != 0)
        return -1;
    int rc = load_text(c, text, len, path);
    free(text);
    return rc;
}

/* Applies YAML `value` to the key or group `path`; origin has no line:column. */
static int set_path(dhf_config *c, const char *path, const char *value, const char *origin)
{
    loader *ld = calloc(1, sizeof *ld);
    dhf_config *work = malloc(sizeof *work);
    if (!ld || !work) {
        free(ld);
        free(work);
        return dhf_err_set("%s: out of memory", origin);
    }
    ld->origin = origin;
    ld->with_marks = false;
    yaml_document_t doc;
    int rc = parse_one_document(ld, value, strlen(value), path, &doc);
    if (rc == 0) {
        ld->doc = &doc;
        memcpy(work, c, sizeof *work);
        const yaml_node_t *v = yaml_document_get_root_node(&doc);
        yaml_node_t empty_value;
        if (!v) {       /* "key=" is null, like "key: " in a file */
            static char nothing[1];
            memset(&empty_value, 0, sizeof empty_value);
            empty_value.type = YAML_SCALAR_NODE;
            empty_value.data.scalar.value = (yaml_char_t *)nothing;
            empty_value.data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
            v = &empty_value;
        }
        rc = apply_path(ld, path, v->start_mark, v, work);
        if (rc == 0)
            memcpy(c, work, sizeof *c);
        yaml_document_delete(&doc);
    }
    free(work);
    free(ld);
    return rc;
}

int dhf_config_set(dhf_config *c, const char *assignment)
{
    char origin[320], path[PATH_CAP];
    size_t alen = strlen(assignment);
    if (alen > 240)
        snprintf(origin, sizeof origin, "--set %.240s...", assignment);
    else
        snprintf(origin, sizeof origin, "--set %s", assignment);
    const char *eq = strchr(assignment, '=');
    if (!eq)
        return dhf_err_set("%s: expected KEY=VALUE, e.g. --set lr=0.001", origin);
    const char *b = assignment, *e = eq;
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    if (b == e)
        return dhf_err_set("%s: expected KEY=VALUE, the key is missing", origin);
    size_t klen = (size_t)(e - b);
    if (klen >= sizeof path)
        klen = sizeof path - 1;
    memcpy(path, b, klen);
    path[klen] = '\0';
    return set_path(c, path, eq + 1, origin);
}

void dhf_config_defaults(dhf_config *c)
{
    memset(c, 0, sizeof *c);
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++) {
        char origin[PATH_CAP + 32];
        snprintf(origin, sizeof origin, "default of '%s'", k->path);
        if (set_path(c, k->path, k->def, origin) != 0)
            /* A broken table row is a programming error; test_config catches it. */
            fprintf(stderr, "dhf: internal error: %s\n", dhf_err_msg());
    }
}

/* ------------------------------------------------------------------------ */
/* Validation                                                                */
/* ------------------------------------------------------------------------ */

/* Re-checks a stored value against its row (configs built in code skip the loader). */
static int check_stored(const dhf_config *c, const dhf_cfg_key *k)
{
    char range[160];
    const void *p = cfield_ptr(c, k);
    const char *r = range_text(k, range, sizeof range);
    switch (k->type) {
    case DHF_CFG_T_BOOL:
        return 0;
    case DHF_CFG_T_INT:
        if (!in_range(k, *(const int *)p))
            return dhf_err_set("config: key '%s': expected %s, got %d", k->path, r, *(const int *)p);
        return 0;
    case DHF_CFG_T_INT64:
        if (!in_range(k, (double)*(const int64_t *)p))
            return dhf_err_set("config: key '%s': expected %s, got %" PRId64, k->path, r,
                               *(const int64_t *)p);
        return 0;
    case DHF_CFG_T_DOUBLE: {
        double v = *(const double *)p;
        if (!isfinite(v))
            return dhf_err_set("config: key '%s': expected a finite number, got %g", k->path, v);
        if (!in_range(k, v))
            return dhf_err_set("config: key '%s': expected %s, got %g", k->path, r, v);
        return 0;
    }
    case DHF_CFG_T_STRING:
    case DHF_CFG_T_ENUM:
        if (!memchr(p, '\0', k->size))
            return dhf_err_set("config: key '%s': string is not terminated", k->path);
        if (k->type == DHF_CFG_T_ENUM && !choice_ok(k->choices, p))
            return dhf_err_set("config: key '%s': expected one of %s, got '%s'", k->path,
                               k->choices, (const char *)p);
        return 0;
    case DHF_CFG_T_INT_LIST: {
        const dhf_int_list *l = p;
        if (l->n < 0 || l->n > DHF_CFG_LIST)
            return dhf_err_set("config: key '%s': expected 0..%d items, got %d", k->path,
                               DHF_CFG_LIST, l->n);
        for (int i = 0; i < l->n; i++)
            if (!in_range(k, (double)l->v[i]))
                return dhf_err_set("config: key '%s[%d]': expected %s, got %" PRId64, k->path, i, r,
                                   l->v[i]);
        return 0;
    }
    case DHF_CFG_T_DOUBLE_LIST: {
        const dhf_double_list *l = p;
        if (l->n < 0 || l->n > DHF_CFG_LIST)
            return dhf_err_set("config: key '%s': expected 0..%d items, got %d", k->path,
                               DHF_CFG_LIST, l->n);
        for (int i = 0; i < l->n; i++)
            if (!isfinite(l->v[i]) || !in_range(k, l->v[i]))
                return dhf_err_set("config: key '%s[%d]': expected %s, got %g", k->path, i, r,
                                   l->v[i]);
        return 0;
    }
    }
    return 0;
}

int dhf_config_validate(const dhf_config *c)
{
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++)
        if (check_stored(c, k) != 0)
            return -1;

    const dhf_int_list *ts = &c->save_timestep;
    if (ts->n < 1)
        return dhf_err_set("config: key 'save_timestep': expected at least one timestep label");
    for (int i = 0; i < ts->n; i++) {
        if (ts->v[i] < 0 || ts->v[i] >= c->num_timesteps)
            return dhf_err_set("config: key 'save_timestep': label %" PRId64
                               " is outside 0..%d (num_timesteps is %d)",
                               ts->v[i], c->num_timesteps - 1, c->num_timesteps);
        for (int j = 0; j < i; j++)
            if (ts->v[j] == ts->v[i])
                return dhf_err_set("config: key 'save_timestep': label %" PRId64
                                   " appears twice (items %d and %d)", ts->v[i], j, i);
    }
    if (c->diffusion_resolution % 8 != 0)
        return dhf_err_set("config: key 'diffusion_resolution': expected a multiple of 8, got %d "
                           "(the VAE downsamples by 8)", c->diffusion_resolution);
    if (c->projection_dim % 4 != 0)
        return dhf_err_set("config: key 'projection_dim': expected a multiple of 4, got %d "
                           "(bottleneck blocks use projection_dim/4 channels)", c->projection_dim);
    if (c->alphas.n < 1)
        return dhf_err_set("config: key 'eval.alphas': expected at least one PCK threshold");
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

/* Shortest decimal text that reads back as exactly v. */
static void fmt_double(char *buf, size_t n, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static bool yaml_word(const char *s)
{
    bool b;
    return is_null_word(s) || bool_word(s, &b) || ieq(s, "y") || ieq(s, "n");
}

/* A string stays plain only when every YAML reader takes it as that string. */
static bool plain_safe(const char *s)
{
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == '/'))
        return false;
    for (const char *p = s; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("_./-", *p)))
            return false;
    return !yaml_word(s);
}

static void sb_yaml_string(sbuf *b, const char *s)
{
    if (plain_safe(s)) {
        sb_puts(b, s);
        return;
    }
    sb_putn(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"': sb_puts(b, "\\\""); break;
        case '\\': sb_puts(b, "\\\\"); break;
        case '\n': sb_puts(b, "\\n"); break;
        case '\t': sb_puts(b, "\\t"); break;
        case '\r': sb_puts(b, "\\r"); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                sb_printf(b, "\\x%02X", *p);
            else
                sb_putn(b, (const char *)p, 1);
        }
    }
    sb_putn(b, "\"", 1);
}

/* The value of key k as YAML flow text (also what the docs show). */
static void sb_value(sbuf *b, const dhf_config *c, const dhf_cfg_key *k)
{
    char num[64];
    const void *p = cfield_ptr(c, k);
    switch (k->type) {
    case DHF_CFG_T_BOOL:
        sb_puts(b, *(const bool *)p ? "true" : "false");
        break;
    case DHF_CFG_T_INT:
        sb_printf(b, "%d", *(const int *)p);
        break;
    case DHF_CFG_T_INT64:
        sb_printf(b, "%" PRId64, *(const int64_t *)p);
        break;
    case DHF_CFG_T_DOUBLE:
        fmt_double(num, sizeof num, *(const double *)p);
        sb_puts(b, num);
        break;
    case DHF_CFG_T_STRING:
    case DHF_CFG_T_ENUM:
        sb_yaml_string(b, p);
        break;
    case DHF_CFG_T_INT_LIST: {
        const dhf_int_list *l = p;
        sb_putn(b, "[", 1);
        for (int i = 0; i < l->n && i < DHF_CFG_LIST; i++)
            sb_printf(b, "%s%" PRId64, i ? ", " : "", l->v[i]);
        sb_putn(b, "]", 1);
        break;
    }
    case DHF_CFG_T_DOUBLE_LIST: {
        const dhf_double_list *l = p;
        sb_putn(b, "[", 1);
        for (int i = 0; i < l->n && i < DHF_CFG_LIST; i++) {
            fmt_double(num, sizeof num, l->v[i]);
            sb_printf(b, "%s%s", i ? ", " : "", num);
        }
        sb_putn(b, "]", 1);
        break;
    }
    }
}

static void sb_comment(sbuf *b, const char *indent, const char *text)
{
    const size_t width = 88;
    const char *p = text;
    while (*p) {
        size_t used = strlen(indent) + 2;
        sb_puts(b, indent);
        sb_puts(b, "#");
        bool first = true;
        while (*p) {
            size_t w = strcspn(p, " ");
            if (!first && used + 1 + w > width)
                break;
            sb_puts(b, " ");
            sb_putn(b, p, w);
            used += 1 + w;
            first = false;
            p += w;
            while (*p == ' ')
                p++;
        }
        sb_puts(b, "\n");
    }
}

/* "eval" for "eval.alphas", "" for top-level keys. */
static size_t group_len(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot ? (size_t)(dot - path) : 0;
}

static int build_yaml(const dhf_config *c, sbuf *b)
{
    sb_puts(b, "# dhf configuration: every key with its value (docs/CONFIG.md describes them).\n"
               "# Layers, later ones win: built-in defaults < config files < --set KEY=VALUE.\n");
    const char *section = NULL;
    const char *group = "";
    size_t glen = 0;
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++) {
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            sb_printf(b, "\n# ---- %s ----\n", section);
        }
        size_t kg = group_len(k->path);
        if (kg != glen || strncmp(group, k->path, kg) != 0) {
            group = k->path;
            glen = kg;
            if (glen)
                sb_printf(b, "%.*s:\n", (int)glen, group);
        }
        const char *indent = glen ? "  " : "";
        sb_comment(b, indent, k->doc);
        sb_printf(b, "%s%s: ", indent, glen ? k->path + glen + 1 : k->path);
        sb_value(b, c, k);
        sb_puts(b, "\n");
    }
    return b->oom ? dhf_err_set("config: out of memory formatting YAML") : 0;
}

int dhf_config_write_yaml(const dhf_config *c, FILE *f)
{
    sbuf b = {0};
    int rc = build_yaml(c, &b);
    if (rc == 0 && (fwrite(sb_str(&b), 1, b.len, f) != b.len || ferror(f)))
        rc = dhf_err_set("config: cannot write YAML: %s", strerror(errno));
    free(b.p);
    return rc;
}

int dhf_config_save_yaml(const dhf_config *c, const char *path)
{
    dhf_atomic_file af;
    if (dhf_atomic_open(&af, path) != 0)
        return -1;
    if (dhf_config_write_yaml(c, af.fp) != 0) {
        dhf_atomic_abort(&af);
        return dhf_err_wrap("%s", path);
    }
    return dhf_atomic_commit(&af);
}

int dhf_config_write_resolved(const dhf_config *c, const char *dir)
{
    char path[4096];
    if (dhf_mkdir_p(dir) != 0)
        return -1;
    if (dhf_path_join(path, sizeof path, dir, "config.resolved.yaml") != 0)
        return -1;
    return dhf_config_save_yaml(c, path);
}

char *dhf_config_to_json(const dhf_config *c)
{
    char num[64];
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    for (const dhf_cfg_key *k = dhf_config_keys; ok && k->path; k++) {
        cJSON *parent = root;
        const char *name = k->path;
        size_t glen = group_len(k->path);
        if (glen) {
            char group[PATH_CAP];
            snprintf(group, sizeof group, "%.*s", (int)glen, k->path);
            parent = cJSON_GetObjectItemCaseSensitive(root, group);
            if (!parent)
                parent = cJSON_AddObjectToObject(root, group);
            name = k->path + glen + 1;
        }
        const void *p = cfield_ptr(c, k);
        cJSON *item = NULL;
        switch (k->type) {
        case DHF_CFG_T_BOOL:
            item = cJSON_CreateBool(*(const bool *)p);
            break;
        case DHF_CFG_T_INT:
            item = cJSON_CreateNumber(*(const int *)p);
            break;
        case DHF_CFG_T_INT64:   /* raw text: a double would round seeds above 2^53 */
            snprintf(num, sizeof num, "%" PRId64, *(const int64_t *)p);
            item = cJSON_CreateRaw(num);
            break;
        case DHF_CFG_T_DOUBLE:
            item = cJSON_CreateNumber(*(const double *)p);
            break;
        case DHF_CFG_T_STRING:
        case DHF_CFG_T_ENUM:
            item = cJSON_CreateString(p);
            break;
        case DHF_CFG_T_INT_LIST: {
            const dhf_int_list *l = p;
            item = cJSON_CreateArray();
            for (int i = 0; item && i < l->n && i < DHF_CFG_LIST; i++) {
                snprintf(num, sizeof num, "%" PRId64, l->v[i]);
                cJSON *e = cJSON_CreateRaw(num);
                if (!e || !cJSON_AddItemToArray(item, e))
                    ok = false;
            }
            break;
        }
        case DHF_CFG_T_DOUBLE_LIST: {
            const dhf_double_list *l = p;
            item = cJSON_CreateArray();
            for (int i = 0; item && i < l->n && i < DHF_CFG_LIST; i++) {
                cJSON *e = cJSON_CreateNumber(l->v[i]);
                if (!e || !cJSON_AddItemToArray(item, e))
                    ok = false;
            }
            break;
        }
        }
        if (!parent || !item || !cJSON_AddItemToObject(parent, name, item)) {
            cJSON_Delete(item);
            ok = false;
        }
    }
    char *printed = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!printed) {
        dhf_err_set("config: out of memory formatting JSON");
        return NULL;
    }
    /* The contract says free(); cJSON may have been given other allocators. */
    char *out = strdup(printed);
    cJSON_free(printed);
    if (!out)
        dhf_err_set("config: out of memory formatting JSON");
    return out;
}

/* ------------------------------------------------------------------------ */
/* Docs                                                                      */
/* ------------------------------------------------------------------------ */

static const char *type_name(const dhf_cfg_key *k)
{
    switch (k->type) {
    case DHF_CFG_T_BOOL: return "bool";
    case DHF_CFG_T_INT: return "integer";
    case DHF_CFG_T_INT64: return "integer (64-bit)";
    case DHF_CFG_T_DOUBLE: return "number";
    case DHF_CFG_T_STRING: return "string";
    case DHF_CFG_T_ENUM: return "choice";
    case DHF_CFG_T_INT_LIST: return "list of integers";
    case DHF_CFG_T_DOUBLE_LIST: return "list of numbers";
    }
    return "?";
}

/* Markdown table cells: escape the column separator and what reads as HTML. */
static void sb_cell(sbuf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            sb_puts(b, "\\|");
        else if (*s == '<' && (isalpha((unsigned char)s[1]) || s[1] == '/'))
            sb_puts(b, "&lt;");   /* "<run_name>" would be read as an HTML tag */
        else
            sb_putn(b, s, 1);
    }
}

static void sb_allowed(sbuf *b, const dhf_cfg_key *k)
{
    char range[160];
    const char *r = range_text(k, range, sizeof range);
    switch (k->type) {
    case DHF_CFG_T_BOOL:
        sb_puts(b, "`true`, `false`");
        break;
    case DHF_CFG_T_INT:
    case DHF_CFG_T_INT64:
    case DHF_CFG_T_DOUBLE:
        sb_cell(b, r ? r : "any");
        break;
    case DHF_CFG_T_STRING:
        sb_printf(b, "up to %zu bytes", k->size - 1);
        break;
    case DHF_CFG_T_ENUM: {
        const char *p = k->choices;
        while (*p) {
            size_t len = strcspn(p, "|");
            sb_printf(b, "%s`%.*s`", p == k->choices ? "" : ", ", (int)len, p);
            p += len;
            if (*p == '|')
                p++;
        }
        break;
    }
    case DHF_CFG_T_INT_LIST:
    case DHF_CFG_T_DOUBLE_LIST:
        sb_printf(b, "up to %d items", DHF_CFG_LIST);
        if (r) {
            sb_puts(b, ", each ");
            sb_cell(b, r);
        }
        break;
    }
}

static const char docs_intro[] =
    "# Configuration reference\n"
    "\n"
    "<!-- Generated from the key table in src/core/config.c (dhf_config_write_docs);\n"
    "     do not edit by hand. Regenerate with\n"
    "     ./build/test_config --write-docs docs/CONFIG.md -->\n"
    "\n"
    "A run's configuration is one typed struct (`dhf_config`, src/core/config.h), built in\n"
    "layers; later layers win:\n"
    "\n"
    "1. the built-in defaults listed below (the paper's settings; `configs/default.yaml`\n"
    "   spells them out with comments);\n"
    "2. YAML config files, in the order given;\n"
    "3. `--set KEY=VALUE` overrides on the command line, in order.\n"
    "\n"
    "Every run writes its fully resolved configuration, every key included, next to its\n"
    "outputs as `config.resolved.yaml`; loading that file as a config file reproduces the\n"
    "run's settings exactly.\n"
    "\n"
    "Key names follow the paper's code (Luo et al., NeurIPS 2023) where it has one:\n"
    "`diffusion_mode`, `save_timestep`, `num_timesteps`, `projection_dim`,\n"
    "`output_resolution`, `load_resolution`, `batch_size`, `lr`, `weight_decay`,\n"
    "`max_steps_per_epoch`, `val_every_n_steps`, `pck_threshold`, `model_id`, `prompt`,\n"
    "`negative_prompt`, `guidance_scale`, `flip_timesteps`.\n"
    "\n"
    "## Syntax\n"
    "\n"
    "- A config file holds one YAML mapping; an empty file changes nothing.\n"
    "- Grouped keys may be nested or dotted: `eval: {alphas: [0.1]}`, `eval.alphas: [0.1]`\n"
    "  and `--set eval.alphas=[0.1]` are the same.\n"
    "- A `--set` value is YAML: `--set save_timestep=[49,25,0]` is a list and\n"
    "  `--set \"prompt='a: b'\"` a string (the inner quotes reach the YAML parser; a\n"
    "  `#` after a space starts a comment). `--set prompt=` (nothing) is the empty string.\n"
    "- Booleans: `true`/`false`, `yes`/`no`, `on`/`off`. For strings `null`, `~` or nothing\n"
    "  is the empty string.\n"
    "- Numbers must be unquoted: `\"4\"` is a string. An integer key rejects `1.5` and `2.0`.\n"
    "- YAML tags (`!!int`) are not supported; anchors and aliases work.\n"
    "\n"
    "## Errors\n"
    "\n"
    "Loading stops at the first problem and changes nothing. The message names the place\n"
    "and the key path:\n"
    "\n"
    "```\n"
    "configs/x.yaml:3:5: key 'eval.alphas': expected a list of numbers, got mapping\n"
    "configs/x.yaml:1:1: unknown key 'lrr'; did you mean 'lr'?\n"
    "--set num_timesteps=0: key 'num_timesteps': expected 1..1000, got 0\n"
    "```\n"
    "\n"
    "Errors: unknown keys (with the closest known key), wrong types (a string or a list where\n"
    "a number is expected, a float where an integer is expected, ...), values out of range,\n"
    "values that are not one of the choices, strings longer than their field, lists longer\n"
    "than 64 items, a key given twice, YAML syntax errors (with libyaml's description), and\n"
    "a top level that is not a mapping.\n"
    "\n"
    "Before a run, cross-key checks (`dhf_config_validate`) also require: every\n"
    "`save_timestep` label in 0..num_timesteps-1 and no label twice, `diffusion_resolution`\n"
    "a multiple of 8, `projection_dim` a multiple of 4, and at least one `eval.alphas`\n"
    "threshold, each in (0, 1].\n";

int dhf_config_write_docs(FILE *f)
{
    dhf_config *def = malloc(sizeof *def);
    if (!def)
        return dhf_err_set("config: out of memory writing docs");
    dhf_config_defaults(def);
    sbuf b = {0};
    sb_puts(&b, docs_intro);
    const char *section = NULL;
    for (const dhf_cfg_key *k = dhf_config_keys; k->path; k++) {
        if (!section || strcmp(section, k->section) != 0) {
            section = k->section;
            sb_printf(&b, "\n## %s\n\n", section);
            sb_puts(&b, "| Key | Type | Default | Allowed | Description |\n"
                        "|---|---|---|---|---|\n");
        }
        sbuf v = {0};
        sb_value(&v, def, k);
        sb_printf(&b, "| `%s` | %s | `", k->path, type_name(k));
        sb_cell(&b, sb_str(&v));
        sb_puts(&b, "` | ");
        sb_allowed(&b, k);
        sb_puts(&b, " | ");
        sb_cell(&b, k->doc);
        sb_puts(&b, " |\n");
        if (v.oom)
            b.oom = true;
        free(v.p);
    }
    free(def);
    int rc = 0;
    if (b.oom)
        rc = dhf_err_set("config: out of memory writing docs");
    else if (fwrite(sb_str(&b), 1, b.len, f) != b.len || ferror(f))
        rc = dhf_err_set("config: cannot write docs: %s", strerror(errno));
    free(b.p);
    return rc;
}
