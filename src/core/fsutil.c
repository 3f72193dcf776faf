/* fsutil.c — whole-file reads, atomic writes, mkdir -p, path joins, a component's weights file. */
#include "core/fsutil.h"
#include "core/error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>

int dhf_read_file(const char *path, char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return dhf_err_set("%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return dhf_err_set("%s: cannot seek: %s", path, strerror(errno));
    }
    long sz = ftell(f);
    if (sz < 0) {
        fclose(f);
        return dhf_err_set("%s: cannot tell size: %s", path, strerror(errno));
    }
    rewind(f);
    char *buf = malloc((size_t)sz + 1);
    if (!buf) {
        fclose(f);
        return dhf_err_set("%s: out of memory reading %ld bytes", path, sz);
    }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    if (got != (size_t)sz) {
        free(buf);
        return dhf_err_set("%s: short read (%zu of %ld bytes)", path, got, sz);
    }
    buf[sz] = '\0';
    *data = buf;
    if (len)
        *len = (size_t)sz;
    return 0;
}

int dhf_atomic_open(dhf_atomic_file *af, const char *path)
{
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path)
        return dhf_err_set("%s: path too long", path);
    strcpy(af->path, path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->fp = fopen(af->tmp, "wb");
    if (!af->fp)
        return dhf_err_set("%s: cannot create: %s", af->tmp, strerror(errno));
    return 0;
}

int dhf_atomic_commit(dhf_atomic_file *af)
{
    if (!af->fp)
        return dhf_err_set("%s: atomic write not open", af->path);
    int bad = fflush(af->fp) != 0 || ferror(af->fp);
    if (!bad)
        bad = fsync(fileno(af->fp)) != 0;
    int err = errno;
    bad |= fclose(af->fp) != 0;
    af->fp = NULL;
    if (bad) {
        unlink(af->tmp);
        return dhf_err_set("%s: write failed: %s", af->path, strerror(err));
    }
    if (rename(af->tmp, af->path) != 0) {
        err = errno;
        unlink(af->tmp);
        return dhf_err_set("%s: cannot rename temp file into place: %s", af->path,
                           strerror(err));
    }
    return 0;
}

void dhf_atomic_abort(dhf_atomic_file *af)
{
    if (af->fp) {
        fclose(af->fp);
        af->fp = NULL;
    }
    if (af->tmp[0])
        unlink(af->tmp);
}

int dhf_write_file_atomic(const char *path, const void *data, size_t len)
{
    dhf_atomic_file af;
    if (dhf_atomic_open(&af, path) != 0)
        return -1;
    if (len && fwrite(data, 1, len, af.fp) != len) {
        int err = errno;
        dhf_atomic_abort(&af);
        return dhf_err_set("%s: write failed: %s", path, strerror(err));
    }
    return dhf_atomic_commit(&af);
}

bool dhf_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

bool dhf_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int dhf_mkdir_p(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return dhf_err_set("mkdir: bad path '%s'", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return dhf_err_set("%s: cannot create directory: %s", buf, strerror(errno));
            buf[i] = c;
        }
    }
    if (!dhf_is_dir(path))
        return dhf_err_set("%s: exists and is not a directory", path);
    return 0;
}

int dhf_path_join(char *out, size_t n, const char *a, const char *b)
{
    int w;
    if (b[0] == '/' || !a || !a[0])
        w = snprintf(out, n, "%s", b);
    else if (a[strlen(a) - 1] == '/')
        w = snprintf(out, n, "%s%s", a, b);
    else
        w = snprintf(out, n, "%s/%s", a, b);
    if (w < 0 || (size_t)w >= n)
        return dhf_err_set("path too long: %s/%s", a, b);
    return 0;
}

const char *dhf_basename(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

int dhf_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : dhf_err_set("%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) != 0)
            return dhf_err_set("cannot remove %s: %s", path, strerror(errno));
        return 0;
    }
    DIR *d = opendir(path);
    if (!d)
        return dhf_err_set("cannot open %s: %s", path, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char child[4096];
        if (dhf_path_join(child, sizeof child, path, e->d_name) != 0)
            rc = -1;
        else
            rc = dhf_remove_tree(child);
    }
    closedir(d);
    if (rc == 0 && rmdir(path) != 0)
        return dhf_err_set("cannot remove %s: %s", path, strerror(errno));
    return rc;
}

/* <dir>/<stem>.safetensors, then the .fp16 variant the hub also ships, then PyTorch's
 * .bin and .fp16.bin: safetensors preferred when both exist. */
int dhf_find_weights_file(const char *dir, const char *stem, char *path, size_t n)
{
    static const char *const suffixes[] = { ".safetensors", ".fp16.safetensors", ".bin",
                                            ".fp16.bin" };
    char name[256], first[4096] = "";
    for (size_t k = 0; k < sizeof suffixes / sizeof suffixes[0]; k++) {
        snprintf(name, sizeof name, "%s%s", stem, suffixes[k]);
        if (dhf_path_join(path, n, dir, name) != 0)
            return -1;
        if (k == 0)
            snprintf(first, sizeof first, "%s", path);
        if (dhf_path_exists(path))
            return 0;
    }
    return dhf_err_set("%s: missing weights file (nor %s.fp16.safetensors, %s.bin or "
                       "%s.fp16.bin beside it)", first, stem, stem, stem);
}
