/* cmd_info.c — `dhf info`: library versions, threads, CUDA, and which BLAS
 * libtorch really uses (read from the loaded libraries, with a matmul probe,
 * because Debian's reference BLAS is 30x slower than OpenBLAS). */
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "shim/torch_shim.h"
#include "engine/conv1x1.h"
#include "engine/engine.h"

#include <cjson/cJSON.h>
#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

static void usage(FILE *f)
{
    fprintf(f, "Usage: dhf info [--threads N] [--json] [--no-probe]\n\n"
               "Prints the versions of libtorch, HDF5, cJSON and libyaml, the thread count,\n"
               "whether CUDA is available, and the BLAS library libtorch loaded, with a\n"
               "1024x1024 float32 matmul probe (GFLOP/s).\n\n"
               "  --threads N   intra-op threads (default: all cores)\n"
               "  --json        one JSON object on stdout instead of text\n"
               "  --no-probe    skip the matmul probe\n");
}

/* The BLAS shared object mapped into this process (libtorch's dependency). */
static void loaded_blas(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *p = strchr(line, '/');
        if (!p)
            continue;
        p[strcspn(p, "\n")] = '\0';
        const char *base = strrchr(p, '/') + 1;
        if (strstr(base, "openblas") || strstr(base, "libblas") || strstr(base, "mkl_") ||
            strstr(base, "blis") || strstr(base, "atlas")) {
            char real[4096];
            if (realpath(p, real))
                snprintf(out, n, "%s", real);
            else
                snprintf(out, n, "%s", p);
            if (strstr(out, "openblas") || strstr(out, "mkl") || strstr(out, "blis"))
                break;   /* an optimised one wins over the generic libblas name */
        }
    }
    fclose(f);
}

static double matmul_probe(void)
{
    const int64_t shape[2] = {1024, 1024};
    dhf_tensor a = NULL, b = NULL, c = NULL;
    double best = 0;
    dhf_scope_begin();
    if (dhf_randn(1, DHF_F32, shape, 2, &a) == DHF_OK &&
        dhf_randn(2, DHF_F32, shape, 2, &b) == DHF_OK && dhf_matmul(a, b, &c) == DHF_OK) {
        for (int i = 0; i < 5; i++) {
            double t0 = dhf_now();
            if (dhf_matmul_out(c, a, b) != DHF_OK)
                break;
            double dt = dhf_now() - t0;
            double gf = 2.0 * 1024 * 1024 * 1024 / dt / 1e9;
            if (gf > best)
                best = gf;
        }
    }
    dhf_scope_end();
    return best;
}

int dhf_cmd_info(int argc, char **argv)
{
    int threads = 0, json = 0, probe = 1;
    for (int i = 1; i < argc; i++) {
        if (dhf_cli_is_help(argv[i])) {
            usage(stdout);
            return DHF_EXIT_OK;
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            if (dhf_cli_parse_threads(argv[++i], &threads) != 0)
                return dhf_cli_usage_error("info", "%s", dhf_err_msg());
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--no-probe") == 0) {
            probe = 0;
        } else {
            return dhf_cli_usage_error("info", "unknown option '%s'", argv[i]);
        }
    }
    if (dhf_cli_apply_threads(threads) != 0)
        return dhf_cli_fail("info");

    unsigned h5maj = 0, h5min = 0, h5rel = 0;
    H5get_libversion(&h5maj, &h5min, &h5rel);
    char h5v[32], blas[4096];
    snprintf(h5v, sizeof h5v, "%u.%u.%u", h5maj, h5min, h5rel);
    loaded_blas(blas, sizeof blas);
    double gflops = probe ? matmul_probe() : 0.0;
    int cuda = dhf_cuda_available();
    long cores = sysconf(_SC_NPROCESSORS_ONLN);

    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "dhf", DHF_VERSION);
        cJSON_AddStringToObject(o, "libtorch", dhf_torch_version());
        cJSON_AddStringToObject(o, "hdf5", h5v);
        cJSON_AddStringToObject(o, "cjson", cJSON_Version());
        cJSON_AddStringToObject(o, "libyaml", yaml_get_version_string());
        cJSON_AddNumberToObject(o, "threads", dhf_get_num_threads());
        cJSON_AddNumberToObject(o, "cores", (double)cores);
        cJSON_AddBoolToObject(o, "cuda_available", cuda);
        cJSON_AddNumberToObject(o, "cuda_devices", cuda ? dhf_cuda_device_count() : 0);
        cJSON_AddStringToObject(o, "blas_library", blas);
        cJSON_AddBoolToObject(o, "onednn_training_step", dhf_engine_available());
        if (probe)
            cJSON_AddNumberToObject(o, "matmul_gflops", gflops);
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
        return DHF_EXIT_OK;
    }
    printf("dhf        %s\n", DHF_VERSION);
    printf("libtorch   %s\n", dhf_torch_version());
    printf("HDF5       %s\n", h5v);
    printf("cJSON      %s\n", cJSON_Version());
    printf("libyaml    %s\n", yaml_get_version_string());
    printf("threads    %d (cores %ld)\n", dhf_get_num_threads(), cores);
    printf("CUDA       %s", cuda ? "available" : "not available");
    if (cuda)
        printf(" (%d device%s)", dhf_cuda_device_count(), dhf_cuda_device_count() == 1 ? "" : "s");
    printf("\nBLAS       %s\n", blas);
    printf("oneDNN     %s\n", dhf_engine_available()
                                 ? "training step on oneDNN (libdnnl, src/engine/fastnet.c)"
                                 : "not built in (training step on libtorch autograd)");
    if (dhf_engine_available())
        printf("conv 1x1   %s\n", dhf_c1x1_supported()
                                     ? "dhf's AVX-512 kernels (src/engine/conv1x1.c) in that step"
                                     : "no AVX-512F here: oneDNN's in that step");
    if (probe)
        printf("matmul     %.1f GFLOP/s (1024x1024 f32, best of 5)%s\n", gflops,
               gflops > 0 && gflops < 20 ? "  <- slow: install libopenblas0-pthread" : "");
    return DHF_EXIT_OK;
}
