#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "rootfs/rootfs.h"

Test(rootfs_image, accepts_plain_names)
{
        cr_assert(rootfs_image_name_is_valid("base"));
        cr_assert(rootfs_image_name_is_valid("python-3.12"));
        cr_assert(rootfs_image_name_is_valid("a"));
        cr_assert(rootfs_image_name_is_valid("Ubuntu_22.04"));
        char max[ROOTFS_IMAGE_NAME_MAX + 1];
        memset(max, 'x', ROOTFS_IMAGE_NAME_MAX);
        max[ROOTFS_IMAGE_NAME_MAX] = '\0';
        cr_assert(rootfs_image_name_is_valid(max));
}

Test(rootfs_image, rejects_paths_dots_and_odd_characters)
{
        const char *bad[] = { "", ".hidden", "..", "../etc/passwd", "a/b", "/abs", "a..b",
                              "-flag", "_x", "a b", "a\nb", "base.ext4/", "é", NULL };
        for (int i = 0; bad[i]; i++)
                cr_assert_not(rootfs_image_name_is_valid(bad[i]), "accepted \"%s\"", bad[i]);
        cr_assert_not(rootfs_image_name_is_valid(NULL));
        char over[ROOTFS_IMAGE_NAME_MAX + 2];
        memset(over, 'x', ROOTFS_IMAGE_NAME_MAX + 1);
        over[ROOTFS_IMAGE_NAME_MAX + 1] = '\0';
        cr_assert_not(rootfs_image_name_is_valid(over));
}

Test(rootfs_image, path_is_dir_name_and_suffix)
{
        char p[64];
        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_image_path("/srv/img", "base", p, sizeof p, &e), 0);
        cr_assert_str_eq(p, "/srv/img/base.ext4");
        cr_assert_eq(rootfs_image_path("/srv/img", "../x", p, sizeof p, &e), -EINVAL);
        cr_assert(strstr(e.msg, "invalid image name"), "%s", e.msg);
        char small[12];
        cr_assert_eq(rootfs_image_path("/srv/img", "base", small, sizeof small, &e), -ENAMETOOLONG);
}
