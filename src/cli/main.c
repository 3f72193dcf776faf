/* main.c — the `dhf` dispatcher: global --help/--version, then one sub-command. */
#include "cli/cli_util.h"
#include "cli/commands.h"

#include <stdio.h>
#include <string.h>

const dhf_command dhf_commands[] = {
    {"info", dhf_cmd_info, "versions of libtorch/HDF5/cJSON/libyaml, threads, CUDA, BLAS"},
    {"config", dhf_cmd_config, "show the resolved configuration, check a file, key reference"},
    {"data", dhf_cmd_data, "check a SPair-71k / CUB-200-2011 folder: structure and counts"},
    {"synth", dhf_cmd_synth, "render the synthetic benchmark in SPair-71k and CUB-200-2011 formats"},
    {"heatmap", dhf_cmd_heatmap, "mixing-weight heatmap of a checkpoint: PNG, SVG and CSV"},
    {"eval", dhf_cmd_eval, "keypoint transfer + PCK over a pair set: results.json/.md, predictions"},
    {"match", dhf_cmd_match, "dense correspondences between two images through a network, drawn"},
    {"draw", dhf_cmd_draw, "one evaluated pair drawn: keypoints, predictions, true targets"},
    {"pck", dhf_cmd_pck, "recompute every PCK metric from a predictions.jsonl"},
    {"generate", dhf_cmd_generate, "images + generation features from prompts (CFG, the paper's sampler)"},
    {"extract", dhf_cmd_extract, "cache diffusion features of a dataset or image list (HDF5, resumable)"},
    {"cache", dhf_cmd_cache, "feature cache: info, verify, export (safetensors), merge shards"},
    {"init-model", dhf_cmd_init_model, "write a random-weight Stable Diffusion folder (tiny or SD sizes)"},
    {"train", dhf_cmd_train, "train the aggregation network on cached features (resumable)"},
    {"import", dhf_cmd_import, "the paper's torch.save aggregation network as a dhf checkpoint + config"},
    {"export", dhf_cmd_export, "a dhf checkpoint as a torch.save file in the paper's layout"},
    {"table1", dhf_cmd_table1, "the paper's Table 1 from one YAML: a resumable plan of extract/train/eval"},
    {NULL, NULL, NULL},
};

static void print_help(FILE *f)
{
    fprintf(f,
            "dhf %s — Diffusion Hyperfeatures: extract, train, evaluate.\n\n"
            "Usage: dhf <command> [options]\n"
            "       dhf <command> --help\n"
            "       dhf --version\n\n"
            "Commands:\n",
            DHF_VERSION);
    for (const dhf_command *c = dhf_commands; c->name; c++)
        fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\nEvery command takes --threads N (default: all cores). "
               "Exit codes: 0 ok, 1 error, 2 usage.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return DHF_EXIT_USAGE;
    }
    if (dhf_cli_is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return DHF_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("dhf %s\n", DHF_VERSION);
        return DHF_EXIT_OK;
    }
    for (const dhf_command *c = dhf_commands; c->name; c++)
        if (strcmp(argv[1], c->name) == 0)
            return c->run(argc - 1, argv + 1);
    fprintf(stderr, "dhf: unknown command '%s'\nTry 'dhf --help'.\n", argv[1]);
    return DHF_EXIT_USAGE;
}
