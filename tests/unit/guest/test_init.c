/*
 * test_init.c - boot argument parsing of guest/init.c (the system setup
 * itself runs only as PID 1 and is covered by
 * tests/integration/test_guest_rootfs.py).
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "ga.h"

Test(ga_init, finds_a_boot_arg)
{
        char v[64];

        cr_assert_eq(ga_boot_arg("console=ttyS0 reboot=k hostname=box-1 panic=1", "hostname", v, sizeof v), 0);
        cr_assert_str_eq(v, "box-1");
        cr_assert_eq(ga_boot_arg("hostname=first\n", "hostname", v, sizeof v), 0);
        cr_assert_str_eq(v, "first");
}

Test(ga_init, ignores_lookalikes_and_reports_absence)
{
        char v[8] = "keep";

        cr_assert_eq(ga_boot_arg("xhostname=a hostname hostnamex=b", "hostname", v, sizeof v), -ENOENT);
        cr_assert_eq(ga_boot_arg("", "hostname", v, sizeof v), -ENOENT);
        cr_assert_str_eq(v, "keep");
}

Test(ga_init, refuses_values_longer_than_the_buffer)
{
        char v[8];

        cr_assert_eq(ga_boot_arg("hostname=muchtoolongname", "hostname", v, sizeof v), -ENAMETOOLONG);
        cr_assert_eq(ga_boot_arg("hostname=", "hostname", v, sizeof v), 0);
        cr_assert_str_eq(v, "");
}
