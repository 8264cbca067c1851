/*
 * rootfs.h - per-sandbox root filesystem clones of named base images.
 *
 * A request names a base image ("base", "python-3.12"); the name is checked
 * against an allow-list charset and never used as a path: it only selects
 * <images_dir>/<name>.ext4. rootfs_clone() gives the sandbox its own writable
 * copy: a reflink (ioctl FICLONE, O(1), shares blocks copy-on-write) where the
 * filesystem supports it, else a sparse copy that copies only the data
 * extents (SEEK_DATA/SEEK_HOLE + copy_file_range) so a 1 GiB image holding
 * 40 MiB of files costs 40 MiB. The clone appears at |dest_path| complete or
 * not at all: it is written under an unnamed (O_TMPFILE) or temporary name in
 * the destination directory and renamed into place at the end.
 *
 * No fsync: a clone has no value after a crash (recovery deletes orphans),
 * so durability would only cost time on the create path.
 */
#ifndef HA_ROOTFS_H
#define HA_ROOTFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* Longest image name; the charset is [A-Za-z0-9][A-Za-z0-9._-]{0,63} and
 * ".." anywhere is refused (so a name can never walk out of images_dir). */
#define ROOTFS_IMAGE_NAME_MAX 64
/* Suffix of base images in images_dir. */
#define ROOTFS_IMAGE_SUFFIX ".ext4"

enum rootfs_clone_method {
        ROOTFS_CLONE_REFLINK,       /* ioctl(FICLONE): blocks shared, COW */
        ROOTFS_CLONE_SPARSE_COPY,   /* data extents copied, holes kept */
};

struct rootfs_clone_info {
        enum rootfs_clone_method method;
        uint64_t size;          /* apparent size of the image, bytes */
        uint64_t bytes_copied;  /* data bytes copied (0 for a reflink) */
        uint64_t extents;       /* data extents copied (0 for a reflink) */
        uint64_t elapsed_us;    /* wall time of the whole clone */
};

/* True when |name| is an acceptable image name (see ROOTFS_IMAGE_NAME_MAX). */
bool rootfs_image_name_is_valid(const char *name);

/* Writes <images_dir>/<image>.ext4 into |ret_path| (|size| bytes).
 * Returns 0, -EINVAL (bad name; |err| says why) or -ENAMETOOLONG. Does not
 * look at the filesystem. */
int rootfs_image_path(const char *images_dir, const char *image, char *ret_path, size_t size,
                      struct ha_err *err);

/* Clones base image |image| of |images_dir| to |dest_path| (a new file; an
 * existing file at that path is replaced). |ret_info| (may be NULL) is filled
 * on success with the method used and what it cost, for logs and benchmarks.
 * Returns 0 or:
 *   -EINVAL        bad image name, or the image is not a regular file
 *   -ENOENT        no such image (|err| names it), or dest directory missing
 *   -ENOSPC        out of space or quota (RESOURCE_EXHAUSTED for clients)
 *   -ENAMETOOLONG  a path does not fit PATH_MAX
 *   other -errno   from open/read/write (|err| says which step)
 * On failure nothing is left at |dest_path| or under a temporary name. */
int rootfs_clone(const char *images_dir, const char *image, const char *dest_path,
                 struct rootfs_clone_info *ret_info, struct ha_err *err);

/* Deletes a clone. Returns 0 (also when it is already gone) or -errno. */
int rootfs_remove(const char *path);

/* "reflink" or "sparse-copy". */
const char *rootfs_clone_method_name(enum rootfs_clone_method m);

#endif
