/*
 * clone.c - rootfs_clone(): reflink, else sparse copy, published atomically.
 *
 * Order of attempts: ioctl(FICLONE) (btrfs, xfs with reflink, bcachefs...),
 * which fails with EOPNOTSUPP/EXDEV/EINVAL/ENOTTY where unsupported; then a
 * sparse copy walking the source with SEEK_DATA/SEEK_HOLE and moving each
 * data extent with copy_file_range (in-kernel, no user-space bounce), with a
 * pread/pwrite fallback for filesystems that refuse copy_file_range. The
 * destination is first sized with ftruncate, so everything not copied stays
 * a hole.
 *
 * Invariant: a failed clone leaves nothing behind. The data is written into
 * an O_TMPFILE (no name at all, so even a crash leaves nothing) or, where
 * O_TMPFILE is unsupported, a dot-named temporary that every error path
 * unlinks. Publishing links the finished file at |dest_path| directly when
 * nothing is there, else under a temporary name then renames over it.
 */
#include "rootfs/rootfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/time.h"

/* Bounce buffer of the pread/pwrite fallback: big enough to stream at disk
 * speed, small enough to allocate per clone. */
#define FALLBACK_CHUNK (1u << 20)
/* copy_file_range length per call; the kernel caps it anyway (MAX_RW_COUNT). */
#define CFR_CHUNK ((size_t)1 << 30)

struct tmpfile {
        int fd;
        bool named;             /* a dot-named file exists at |name| */
        char dir[PATH_MAX];
        char base[NAME_MAX + 1];
        char name[PATH_MAX];
};

static int space_errno(int e)
{
        /* Quota exhaustion is, for the client, the same as a full disk. */
        return (e == EDQUOT) ? -ENOSPC : -e;
}

static int split_dest(const char *dest_path, struct tmpfile *t, struct ha_err *err)
{
        const char *slash = strrchr(dest_path, '/');
        const char *base = slash ? slash + 1 : dest_path;
        size_t dlen = slash ? (size_t)(slash - dest_path) : 0;

        if (!base[0] || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
                return ha_err_set(err, -EINVAL, "clone destination %s is not a file path", dest_path);
        if (strlen(base) > NAME_MAX - 16)
                return ha_err_set(err, -ENAMETOOLONG, "clone destination name too long: %s", base);
        if (dlen >= sizeof t->dir)
                return ha_err_set(err, -ENAMETOOLONG, "clone destination path too long");
        if (slash == dest_path) {
                snprintf(t->dir, sizeof t->dir, "%s", "/");
        } else if (slash) {
                memcpy(t->dir, dest_path, dlen);
                t->dir[dlen] = '\0';
        } else {
                snprintf(t->dir, sizeof t->dir, "%s", ".");
        }
        snprintf(t->base, sizeof t->base, "%s", base);
        return 0;
}

static int tmpfile_open(struct tmpfile *t, struct ha_err *err)
{
        t->fd = open(t->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (t->fd >= 0)
                return 0;
        int e = errno;
        if (e != EOPNOTSUPP && e != EISDIR && e != EINVAL)
                goto fail;
        /* No O_TMPFILE here: a named temporary that error paths unlink. */
        int n = snprintf(t->name, sizeof t->name, "%s/.%s.XXXXXX", t->dir, t->base);
        if (n < 0 || (size_t)n >= sizeof t->name)
                return ha_err_set(err, -ENAMETOOLONG, "clone destination path too long");
        t->fd = mkostemp(t->name, O_CLOEXEC);
        if (t->fd >= 0) {
                t->named = true;
                return 0;
        }
        e = errno;
fail:
        return ha_err_set(err, space_errno(e), "create clone file in %s: %s", t->dir, strerror(e));
}

/* Abandons the file: closing an O_TMPFILE frees it; a named one is unlinked. */
static void tmpfile_discard(struct tmpfile *t)
{
        if (t->fd >= 0)
                close(t->fd);
        t->fd = -1;
        if (t->named)
                unlink(t->name);
        t->named = false;
}

static int link_tmpfile(const struct tmpfile *t, const char *path)
{
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", t->fd);
        return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

/* Gives the finished file the name |dest_path|. */
static int tmpfile_publish(struct tmpfile *t, const char *dest_path, struct ha_err *err)
{
        int r;
        if (!t->named) {
                r = link_tmpfile(t, dest_path);
                if (r == 0)
                        return 0;
                if (r != -EEXIST)
                        return ha_err_set(err, space_errno(-r), "link clone at %s: %s", dest_path,
                                          strerror(-r));
                /* Something is in the way: link under a temporary name,
                 * then rename over it (rename replaces atomically). */
                for (unsigned i = 0;; i++) {
                        int n = snprintf(t->name, sizeof t->name, "%s/.%s.%ld.%u", t->dir, t->base,
                                         (long)getpid(), i);
                        if (n < 0 || (size_t)n >= sizeof t->name)
                                return ha_err_set(err, -ENAMETOOLONG, "clone path too long");
                        r = link_tmpfile(t, t->name);
                        if (r == 0)
                                break;
                        if (r != -EEXIST || i >= 100)
                                return ha_err_set(err, space_errno(-r), "link clone at %s: %s",
                                                  t->name, strerror(-r));
                }
                t->named = true;
        }
        if (rename(t->name, dest_path) < 0) {
                int e = errno;
                return ha_err_set(err, space_errno(e), "rename clone to %s: %s", dest_path,
                                  strerror(e));
        }
        t->named = false;
        return 0;
}

static bool reflink_unsupported(int e)
{
        return e == EOPNOTSUPP || e == ENOTTY || e == EXDEV || e == EINVAL || e == ENOSYS ||
               e == EPERM;
}

static int copy_fallback(int src, int dst, off_t off, off_t len)
{
        char *buf = malloc(FALLBACK_CHUNK);
        if (!buf)
                return -ENOMEM;
        int r = 0;
        while (len > 0) {
                size_t want = len < (off_t)FALLBACK_CHUNK ? (size_t)len : FALLBACK_CHUNK;
                ssize_t n = pread(src, buf, want, off);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto out_free;
                }
                if (n == 0) /* the image shrank under us */
                        break;
                for (ssize_t done = 0; done < n;) {
                        ssize_t w = pwrite(dst, buf + done, (size_t)(n - done), off + done);
                        if (w < 0) {
                                if (errno == EINTR)
                                        continue;
                                r = -errno;
                                goto out_free;
                        }
                        done += w;
                }
                off += n;
                len -= n;
        }
out_free:
        free(buf);
        return r;
}

/* Copies [off, off+len) of |src| to the same offsets of |dst|. */
static int copy_extent(int src, int dst, off_t off, off_t len, bool *use_cfr)
{
        loff_t in = off, out = off;
        while (len > 0 && *use_cfr) {
                size_t want = len < (off_t)CFR_CHUNK ? (size_t)len : CFR_CHUNK;
                ssize_t n = copy_file_range(src, &in, dst, &out, want, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int e = errno;
                        if (e == EXDEV || e == EOPNOTSUPP || e == ENOSYS || e == EINVAL) {
                                *use_cfr = false; /* and for the rest of this clone */
                                break;
                        }
                        return -e;
                }
                if (n == 0)
                        return 0;
                len -= n;
        }
        if (len > 0)
                return copy_fallback(src, dst, in, len);
        return 0;
}

static int sparse_copy(int src, int dst, off_t size, struct rootfs_clone_info *info)
{
        if (ftruncate(dst, size) < 0)
                return -errno;
        bool use_cfr = true;
        off_t pos = 0;
        while (pos < size) {
                off_t data = lseek(src, pos, SEEK_DATA);
                if (data < 0) {
                        if (errno == ENXIO) /* only a hole remains */
                                break;
                        return -errno;
                }
                off_t hole = lseek(src, data, SEEK_HOLE);
                if (hole < 0)
                        return -errno;
                if (hole > size)
                        hole = size;
                int r = copy_extent(src, dst, data, hole - data, &use_cfr);
                if (r < 0)
                        return r;
                info->bytes_copied += (uint64_t)(hole - data);
                info->extents++;
                pos = hole;
        }
        return 0;
}

int rootfs_clone(const char *images_dir, const char *image, const char *dest_path,
                 struct rootfs_clone_info *ret_info, struct ha_err *err)
{
        char src_path[PATH_MAX];
        struct tmpfile t = { .fd = -1 };
        struct rootfs_clone_info info = { 0 };
        uint64_t t0 = ha_now_ns();
        int r;

        if (!dest_path || !dest_path[0])
                return ha_err_set(err, -EINVAL, "no clone destination");
        r = rootfs_image_path(images_dir, image, src_path, sizeof src_path, err);
        if (r < 0)
                return r;
        r = split_dest(dest_path, &t, err);
        if (r < 0)
                return r;

        int src = open(src_path, O_RDONLY | O_CLOEXEC);
        if (src < 0) {
                int e = errno;
                if (e == ENOENT)
                        return ha_err_set(err, -ENOENT, "unknown image %s (no %s)", image, src_path);
                return ha_err_set(err, -e, "open image %s: %s", src_path, strerror(e));
        }
        struct stat st;
        if (fstat(src, &st) < 0) {
                r = -errno;
                ha_err_set(err, r, "stat image %s: %s", src_path, strerror(-r));
                goto out_close_src;
        }
        if (!S_ISREG(st.st_mode)) {
                r = ha_err_set(err, -EINVAL, "image %s is not a regular file", src_path);
                goto out_close_src;
        }
        info.size = (uint64_t)st.st_size;

        r = tmpfile_open(&t, err);
        if (r < 0)
                goto out_close_src;

        if (ioctl(t.fd, FICLONE, src) == 0) {
                info.method = ROOTFS_CLONE_REFLINK;
        } else {
                int e = errno;
                if (!reflink_unsupported(e)) {
                        r = ha_err_set(err, space_errno(e), "reflink %s: %s", src_path, strerror(e));
                        goto out_discard;
                }
                info.method = ROOTFS_CLONE_SPARSE_COPY;
                r = sparse_copy(src, t.fd, st.st_size, &info);
                if (r < 0) {
                        r = space_errno(-r);
                        ha_err_set(err, r, "copy image %s to %s: %s", image, dest_path,
                                   strerror(-r));
                        goto out_discard;
                }
        }
        /* Writable by the VMM regardless of the image's own mode. */
        if (fchmod(t.fd, 0600) < 0) {
                r = -errno;
                ha_err_set(err, r, "chmod clone: %s", strerror(-r));
                goto out_discard;
        }
        r = tmpfile_publish(&t, dest_path, err);
        if (r < 0)
                goto out_discard;
        close(t.fd);
        close(src);
        info.elapsed_us = (ha_now_ns() - t0) / 1000;
        if (ret_info)
                *ret_info = info;
        return 0;

out_discard:
        tmpfile_discard(&t);
out_close_src:
        close(src);
        return r;
}

int rootfs_remove(const char *path)
{
        if (!path || !path[0])
                return -EINVAL;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}
