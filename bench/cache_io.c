/* cache_io.c — benchmark of the HDF5 feature cache at Stable Diffusion 1.5 shapes
 * (12 decoder layers for a 512x512 image: 7.1 M values per saved step): bytes per
 * image, write + commit time per image (flush + fsync included), read time of one
 * image's maps as float32 (cold, then again from the chunk cache), and the
 * compression ratio, for float16/float32 with and without shuffle+deflate.
 * Values are synthetic (smooth fields + noise, roughly unit scale like decoder
 * activations); real features' compressibility may differ: `dhf cache info`
 * prints the ratio of a real cache.
 * Usage: bench_cache_io [--images N] [--steps S] [--res 512] [--dir DIR]
 *        [--levels 0,1,4] [--dtypes float16,float32] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error.h"
#include "core/progress.h"
#include "cache/feature_cache.h"

static void sd15_layout(dhf_cache_layout *l, int res, int steps, dhf_cache_dtype dt, int level)
{
    dhf_cache_layout_init(l);
    const int ch[4] = {1280, 1280, 640, 320};
    int lat = res / 8;
    l->num_layers = 12;
    for (int k = 0; k < 12; k++) {
        int i = k / 3, side = lat >> (3 - i);
        snprintf(l->layer_name[k], DHF_CACHE_NAME_LEN, "up_blocks.%d.resnets.%d", i, k % 3);
        l->layer_chw[k][0] = ch[i];
        l->layer_chw[k][1] = side;
        l->layer_chw[k][2] = side;
    }
    l->num_steps = steps;
    for (int s = 0; s < steps; s++) {
        l->save_label[s] = steps - 1 - s;
        l->unet_timestep[s] = s == 0 ? -1 : 20.0 * s;
    }
    l->dtype = dt;
    l->compression = level;
    snprintf(l->model_name, sizeof l->model_name, "sd15-shapes (synthetic)");
    snprintf(l->model_hash, sizeof l->model_hash, "none");
}

static uint64_t rng = 88172645463325252ull;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

/* Smooth per-channel field plus noise: activations are spatially correlated. */
static void fill(float *v, int64_t c, int64_t h, int64_t w, int seed)
{
    for (int64_t k = 0; k < c; k++) {
        double fx = 0.05 + 0.3 * uniform(), fy = 0.05 + 0.3 * uniform(), a = 2 * uniform();
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++)
                v[(k * h + y) * w + x] =
                    (float)(a * sin(fx * x + fy * y + seed) + 0.3 * (uniform() - 0.5));
    }
}

int main(int argc, char **argv)
{
    int images = 3, steps = 11, res = 512;
    const char *dir = "/tmp", *levels = "0,1,4", *dtypes = "float16,float32";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--images"))
            images = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--res"))
            res = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir"))
            dir = argv[i + 1];
        else if (!strcmp(argv[i], "--levels"))
            levels = argv[i + 1];
        else if (!strcmp(argv[i], "--dtypes"))
            dtypes = argv[i + 1];
        else {
            fprintf(stderr, "bench_cache_io: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    size_t biggest = (size_t)320 * (res / 8) * (res / 8);
    float *buf = malloc((size_t)steps * biggest * sizeof *buf);
    if (!buf)
        return 1;
    printf("feature cache I/O, SD 1.5 shapes at %dx%d, %d saved step(s), %d image(s)\n", res,
           res, steps, images);
    printf("%-8s %-6s %12s %10s %10s %10s %12s %8s\n", "dtype", "level", "MB/image",
           "write s", "read s", "reread s", "stored MB/im", "ratio");
    char dts[64];
    snprintf(dts, sizeof dts, "%s", dtypes);
    for (char *dt = strtok(dts, ","); dt; dt = strtok(NULL, ",")) {
        dhf_cache_dtype dtype;
        if (dhf_cache_dtype_parse(dt, &dtype) != 0)
            return 1;
        char lv[64];
        snprintf(lv, sizeof lv, "%s", levels);
        char *save = NULL;
        for (char *ls = strtok_r(lv, ",", &save); ls; ls = strtok_r(NULL, ",", &save)) {
            int level = atoi(ls);
            char path[4096];
            snprintf(path, sizeof path, "%s/bench_cache_io_%d.h5", dir, (int)getpid());
            unlink(path);
            dhf_cache_layout l;
            sd15_layout(&l, res, steps, dtype, level);
            dhf_feature_cache *c = NULL;
            if (dhf_cache_open_write(path, &l, &c) != 0) {
                fprintf(stderr, "%s\n", dhf_err_msg());
                return 1;
            }
            double t_write = 0;
            for (int im = 0; im < images; im++) {
                dhf_cache_image ci = {.width = res, .height = res};
                snprintf(ci.key, sizeof ci.key, "bench/%d.jpg", im);
                int64_t row;
                if (dhf_cache_add_images(c, &ci, 1, &row) != 0)
                    return 1;
                for (int s = 0; s < steps; s++)
                    for (int k = 0; k < 12; k++) {
                        size_t n = dhf_cache_map_numel(c, k);
                        fill(buf, l.layer_chw[k][0], l.layer_chw[k][1], l.layer_chw[k][2],
                             im * 100 + s);
                        double t0 = dhf_now();
                        if (dhf_cache_write_map(c, row, s, k, buf, n) != 0)
                            return 1;
                        t_write += dhf_now() - t0;
                    }
                double t0 = dhf_now();
                if (dhf_cache_commit(c, row) != 0)
                    return 1;
                t_write += dhf_now() - t0;
            }
            if (dhf_cache_close(c) != 0 || dhf_cache_open_read(path, 1, &c) != 0) {
                fprintf(stderr, "%s\n", dhf_err_msg());
                return 1;
            }
            /* Cold-ish read of every image (page cache is warm: this is decode and
             * conversion cost, not disk), then the last image again (chunk cache). */
            double t_read = 0, t_reread = 0;
            for (int im = 0; im < images; im++) {
                double t0 = dhf_now();
                for (int k = 0; k < 12; k++)
                    if (dhf_cache_read_layer(c, im, k, buf,
                                             (size_t)steps * dhf_cache_map_numel(c, k)) != 0)
                        return 1;
                t_read += dhf_now() - t0;
            }
            double t0 = dhf_now();
            for (int k = 0; k < 12; k++)
                if (dhf_cache_read_layer(c, images - 1, k, buf,
                                         (size_t)steps * dhf_cache_map_numel(c, k)) != 0)
                    return 1;
            t_reread = dhf_now() - t0;
            dhf_cache_stats st;
            if (dhf_cache_get_stats(c, &st) != 0)
                return 1;
            printf("%-8s %-6d %12.1f %10.3f %10.3f %10.3f %12.1f %7.2fx\n", dt, level,
                   st.bytes_per_image / 1e6, t_write / images, t_read / images, t_reread,
                   st.stored_bytes / 1e6 / images, st.compression_ratio);
            fflush(stdout);
            dhf_cache_close(c);
            unlink(path);
        }
    }
    free(buf);
    return 0;
}
