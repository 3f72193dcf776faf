/* fsutil.h — small file-system helpers every module needs: whole-file reads,
 * atomic writes (temp file + fsync + rename), directories, path joins. */
#ifndef DHF_CORE_FSUTIL_H
#define DHF_CORE_FSUTIL_H

#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>

/* Reads a whole file; *data is malloc'd and NUL-terminated (len excludes the NUL). */
int dhf_read_file(const char *path, char **data, size_t *len);
/* Writes len bytes to path atomically: path.tmp.<pid> then fsync then rename. */
int dhf_write_file_atomic(const char *path, const void *data, size_t len);

/* Atomic write through a FILE*: open gives a stream on a temp file beside `path`;
 * commit flushes, fsyncs and renames it over `path`; abort removes it. */
typedef struct {
    FILE *fp;
    char path[4096];
    char tmp[4160];
} dhf_atomic_file;
int dhf_atomic_open(dhf_atomic_file *af, const char *path);
int dhf_atomic_commit(dhf_atomic_file *af);
void dhf_atomic_abort(dhf_atomic_file *af);

bool dhf_path_exists(const char *path);
bool dhf_is_dir(const char *path);
int dhf_mkdir_p(const char *path);               /* like mkdir -p */
/* Removes a file or a directory tree (rm -r) without following symbolic links;
 * a missing path is not an error. */
int dhf_remove_tree(const char *path);
/* out = a "/" b (b absolute: b alone). Error if it does not fit. */
int dhf_path_join(char *out, size_t n, const char *a, const char *b);
const char *dhf_basename(const char *path);       /* pointer into path */

/* The weights of a diffusers component: <dir>/<stem>.safetensors, else the
 * `.fp16.safetensors` variant the hub also ships, else PyTorch's `<stem>.bin` or
 * `.fp16.bin` (read by extract/pt_weights.h); safetensors preferred. */
int dhf_find_weights_file(const char *dir, const char *stem, char *path, size_t n);

#endif
