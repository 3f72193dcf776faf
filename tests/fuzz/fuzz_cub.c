/* fuzz_cub.c — CUB-200-2011's tables (eval/dataset.h: dhf_cub_load) on arbitrary
 * bytes: the input's NUL-separated parts become images.txt, image_class_labels.txt,
 * train_test_split.txt, bounding_boxes.txt, parts/parts.txt and parts/part_locs.txt. */
#include "fuzz_util.h"

#include "eval/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const files[6] = {"cub/images.txt", "cub/image_class_labels.txt",
                                         "cub/train_test_split.txt", "cub/bounding_boxes.txt",
                                         "cub/parts/parts.txt", "cub/parts/part_locs.txt"};
    char root[300];
    snprintf(root, sizeof root, "%s/cub", fuzz_dir());
    mkdir(root, 0700);
    char parts[320];
    snprintf(parts, sizeof parts, "%s/parts", root);
    mkdir(parts, 0700);
    for (int k = 0; k < 6; k++) {
        size_t n = 0;
        const uint8_t *p = fuzz_part(data, size, k, &n);
        char name[64];
        snprintf(name, sizeof name, "%s", files[k]);
        fuzz_write(name, p, n);
    }
    dhf_dataset ds;
    memset(&ds, 0, sizeof ds);
    dhf_cub_options o = {.split = "test"};
    dhf_cub_load(root, &o, &ds);
    dhf_dataset_free(&ds);
    return 0;
}
