/*
 * snapshot.c - see snapshot.h. File format (version 1):
 *   {"fcsim_snapshot_version":1, "firecracker_version":"1.16.1",
 *    "kind":"filesystem-only", "token":"<32 hex>", "config":{...}}
 * and the memory file "fcsim-mem 1 <token>\n". Files are written to a
 * temporary name and renamed, so a failed create leaves no torn file.
 */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "schema.h"

#define SNAPSHOT_VERSION 1
/* A configuration is a few KiB; anything bigger is not our file. */
#define SNAPSHOT_MAX   (1u << 20)
#define MEM_MARKER_MAX 128

static int write_file_atomic(const char *path, const char *data, size_t len, struct ha_err *err)
{
        char tmp[FCSIM_PATH_MAX + 16];
        int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
        if (n < 0 || (size_t)n >= sizeof tmp)
                return ha_err_set(err, -ENAMETOOLONG, "path too long: %s", path);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                int r = -errno;
                return ha_err_set(err, r, "cannot create %s: %s", path, strerror(-r));
        }
        int r = 0;
        while (len > 0 && r == 0) {
                ssize_t w = write(fd, data, len);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w <= 0)
                        r = w < 0 ? -errno : -EIO;
                else {
                        data += w;
                        len -= (size_t)w;
                }
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return ha_err_set(err, r, "cannot write %s: %s", path, strerror(-r));
        }
        return 0;
}

static int read_file(const char *path, size_t max, char **ret, size_t *ret_len, struct ha_err *err)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                return ha_err_set(err, r, "cannot open %s: %s", path, strerror(-r));
        }
        struct stat sb;
        int r = 0;
        char *buf = NULL;
        if (fstat(fd, &sb) < 0) {
                r = -errno;
                goto out_close;
        }
        if ((uint64_t)sb.st_size > max) {
                r = -EFBIG;
                goto out_close;
        }
        buf = malloc((size_t)sb.st_size + 1);
        if (!buf) {
                r = -ENOMEM;
                goto out_close;
        }
        size_t got = 0;
        while (got < (size_t)sb.st_size) {
                ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        buf[got] = '\0';
        *ret = buf;
        *ret_len = got;
        buf = NULL;
out_close:
        close(fd);
        free(buf);
        if (r < 0)
                return ha_err_set(err, r, "cannot read %s: %s", path, strerror(-r));
        return 0;
}

int fcsim_snapshot_write(const struct fcsim_config *c, const char *snapshot_path,
                         const char *mem_path, struct ha_err *err)
{
        uint8_t rnd[16];
        char token[33];
        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd)
                return ha_err_set(err, -EIO, "getrandom failed");
        for (size_t i = 0; i < 16; i++)
                snprintf(token + 2 * i, 3, "%02x", rnd[i]);

        int r = -ENOMEM;
        char *text = NULL;
        cJSON *o = cJSON_CreateObject();
        if (!o)
                goto out;
        cJSON_AddNumberToObject(o, "fcsim_snapshot_version", SNAPSHOT_VERSION);
        cJSON_AddStringToObject(o, "firecracker_version", FCSIM_FC_VERSION);
        cJSON_AddStringToObject(o, "kind", "filesystem-only");
        cJSON_AddStringToObject(o, "token", token);
        cJSON *cfg = fcsim_config_to_json(c);
        if (!cfg || !cJSON_AddItemToObject(o, "config", cfg)) {
                cJSON_Delete(cfg);
                goto out;
        }
        text = cJSON_Print(o);
        if (!text)
                goto out;
        char mem[MEM_MARKER_MAX];
        int n = snprintf(mem, sizeof mem, "fcsim-mem %d %s\n", SNAPSHOT_VERSION, token);
        r = write_file_atomic(mem_path, mem, (size_t)n, err);
        if (r == 0)
                r = write_file_atomic(snapshot_path, text, strlen(text), err);
        if (r < 0)
                unlink(mem_path);
        cJSON_free(text);
        cJSON_Delete(o);
        return r;
out:
        cJSON_Delete(o);
        return ha_err_set(err, r, "cannot build the snapshot: out of memory");
}

int fcsim_snapshot_read(const char *snapshot_path, const char *mem_path, struct fcsim_config *ret,
                        struct ha_err *err)
{
        char *text = NULL, *mem = NULL;
        size_t len = 0, mem_len = 0;
        cJSON *o = NULL;
        int r = read_file(snapshot_path, SNAPSHOT_MAX, &text, &len, err);
        if (r < 0)
                return r;
        r = read_file(mem_path, MEM_MARKER_MAX, &mem, &mem_len, err);
        if (r < 0)
                goto out;
        r = fcsim_json_parse(text, len, &o, err);
        if (r < 0) {
                ha_err_set(err, r, "%s is not an fcsim snapshot", snapshot_path);
                goto out;
        }
        if (fcsim_json_uint(o, "fcsim_snapshot_version", 0) != SNAPSHOT_VERSION) {
                r = ha_err_set(err, -EINVAL, "%s: unsupported snapshot version", snapshot_path);
                goto out;
        }
        const char *token = fcsim_json_str(o, "token", "");
        char want[MEM_MARKER_MAX];
        snprintf(want, sizeof want, "fcsim-mem %d %s\n", SNAPSHOT_VERSION, token);
        /* read_file set mem or failed with -errno < 0: the analyzer does not
         * know that errno is not 0 after a failed open. */
        /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
        if (strlen(token) != 32 || strcmp(want, mem) != 0) {
                r = ha_err_set(err, -EINVAL, "the memory file %s does not belong to snapshot %s",
                               mem_path, snapshot_path);
                goto out;
        }
        r = fcsim_config_from_json(ret, cJSON_GetObjectItemCaseSensitive(o, "config"), err);
out:
        cJSON_Delete(o);
        free(text);
        free(mem);
        return r;
}
