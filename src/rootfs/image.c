/*
 * image.c - base image names and where they live.
 *
 * An image name comes from a client, so it is treated as hostile: only the
 * charset [A-Za-z0-9][A-Za-z0-9._-]{0,63} passes, which excludes '/', NUL
 * tricks and leading dots; ".." is refused too even though it could only
 * ever produce a file name here, so that logs and error messages never show
 * anything path-like coming from a client.
 */
#include "rootfs/rootfs.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool is_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool rootfs_image_name_is_valid(const char *name)
{
        if (!name || !is_alnum(name[0]))
                return false;
        size_t n = 0;
        for (const char *p = name; *p; p++, n++) {
                if (n >= ROOTFS_IMAGE_NAME_MAX)
                        return false;
                if (!is_alnum(*p) && *p != '.' && *p != '_' && *p != '-')
                        return false;
        }
        return strstr(name, "..") == NULL;
}

int rootfs_image_path(const char *images_dir, const char *image, char *ret_path, size_t size,
                      struct ha_err *err)
{
        if (!rootfs_image_name_is_valid(image))
                return ha_err_set(err, -EINVAL,
                                  "invalid image name: want 1-%d characters of [A-Za-z0-9._-], "
                                  "starting with a letter or digit, without \"..\"",
                                  ROOTFS_IMAGE_NAME_MAX);
        if (!images_dir || !images_dir[0])
                return ha_err_set(err, -EINVAL, "no images directory configured");
        int n = snprintf(ret_path, size, "%s/%s%s", images_dir, image, ROOTFS_IMAGE_SUFFIX);
        if (n < 0 || (size_t)n >= size)
                return ha_err_set(err, -ENAMETOOLONG, "image path for %s is too long", image);
        return 0;
}

const char *rootfs_clone_method_name(enum rootfs_clone_method m)
{
        switch (m) {
        case ROOTFS_CLONE_REFLINK:
                return "reflink";
        case ROOTFS_CLONE_SPARSE_COPY:
                return "sparse-copy";
        }
        return "unknown";
}
