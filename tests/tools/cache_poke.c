/* cache_poke.c — a test tool: writes one NaN or Inf into a committed map of a feature
 * cache through HDF5 (so the chunk checksums stay valid), as a float16 overflow at
 * extraction or a hand edit would leave it. Used by tests/e2e/bad_inputs.sh.
 *   cache_poke CACHE.h5 ROW STEP LAYER nan|inf     (ROW -1: every row; LAYER from 1) */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 6 || (strcmp(argv[5], "nan") && strcmp(argv[5], "inf"))) {
        fprintf(stderr, "usage: cache_poke CACHE.h5 ROW STEP LAYER nan|inf\n");
        return 2;
    }
    int nan = strcmp(argv[5], "nan") == 0;
    char name[64];
    snprintf(name, sizeof name, "layers/layer%02d", atoi(argv[4]));
    hid_t f = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t d = f >= 0 ? H5Dopen2(f, name, H5P_DEFAULT) : -1;
    if (d < 0) {
        fprintf(stderr, "cache_poke: %s: cannot open %s\n", argv[1], name);
        return 1;
    }
    hid_t ft = H5Dget_type(d), fs = H5Dget_space(d);
    hsize_t dims[5];
    H5Sget_simple_extent_dims(fs, dims, NULL);
    long long row = atoll(argv[2]);
    hsize_t r0 = row < 0 ? 0 : (hsize_t)row, r1 = row < 0 ? dims[0] : (hsize_t)row + 1;
    hsize_t one[5] = {1, 1, 1, 1, 1};
    hid_t ms = H5Screate_simple(5, one, NULL);
    /* the value in the file's own type, so HDF5 converts nothing */
    uint16_t h = nan ? 0x7E00 : 0x7C00;
    float v = nan ? __builtin_nanf("") : __builtin_inff();
    const void *buf = H5Tget_size(ft) == 2 ? (const void *)&h : (const void *)&v;
    int rc = 0;
    for (hsize_t r = r0; r < r1 && !rc; r++) {
        hsize_t start[5] = {r, (hsize_t)atoi(argv[3]), 0, 0, 0};
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, one, NULL);
        rc = H5Dwrite(d, ft, ms, fs, H5P_DEFAULT, buf) < 0;
    }
    H5Sclose(ms);
    H5Sclose(fs);
    H5Tclose(ft);
    H5Dclose(d);
    H5Fclose(f);
    if (rc)
        fprintf(stderr, "cache_poke: %s: write failed\n", argv[1]);
    return rc;
}
