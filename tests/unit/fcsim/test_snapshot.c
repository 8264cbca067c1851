/* Tests tools/fcsim/snapshot.c: round trip, marker check, bad files. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapshot.h"

static char dir[64], snap[128], mem[128], kernel[128], disk[128];

static void touch(const char *p, const char *text)
{
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
}

static void setup(void)
{
        snprintf(dir, sizeof dir, "/tmp/fcsimu-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(snap, sizeof snap, "%s/snap", dir);
        snprintf(mem, sizeof mem, "%s/mem", dir);
        snprintf(kernel, sizeof kernel, "%s/vmlinux", dir);
        snprintf(disk, sizeof disk, "%s/disk.ext4", dir);
        touch(kernel, "k");
        touch(disk, "d");
}

static void teardown(void)
{
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(fcsim_snapshot, .init = setup, .fini = teardown);

static void sample(struct fcsim_config *c)
{
        fcsim_config_init(c);
        c->machine.vcpu_count = 2;
        c->machine.mem_size_mib = 512;
        c->boot.set = true;
        snprintf(c->boot.kernel_image_path, sizeof c->boot.kernel_image_path, "%s", kernel);
        c->boot.has_boot_args = true;
        snprintf(c->boot.boot_args, sizeof c->boot.boot_args, "reboot=k ip=1.2.3.4::1.2.3.1:255.255.255.0::eth0:off");
        c->n_drives = 1;
        snprintf(c->drives[0].id, sizeof c->drives[0].id, "rootfs");
        snprintf(c->drives[0].path_on_host, sizeof c->drives[0].path_on_host, "%s", disk);
        c->drives[0].is_root_device = true;
        snprintf(c->drives[0].cache_type, sizeof c->drives[0].cache_type, "Unsafe");
        snprintf(c->drives[0].io_engine, sizeof c->drives[0].io_engine, "Sync");
}

Test(fcsim_snapshot, round_trips_the_configuration)
{
        struct fcsim_config c, back;
        struct ha_err err = { "" };
        sample(&c);
        cr_assert_eq(fcsim_snapshot_write(&c, snap, mem, &err), 0, "%s", err.msg);
        cr_assert_eq(fcsim_snapshot_read(snap, mem, &back, &err), 0, "%s", err.msg);
        cr_assert_eq(back.machine.vcpu_count, 2);
        cr_assert_eq(back.machine.mem_size_mib, 512);
        cr_assert_str_eq(back.boot.boot_args, c.boot.boot_args);
        cr_assert_eq(back.n_drives, 1);
        cr_assert_str_eq(back.drives[0].path_on_host, disk);
        cr_assert(back.drives[0].is_root_device);
        char tmp[160];
        snprintf(tmp, sizeof tmp, "%s.tmp", snap);
        cr_assert_neq(access(tmp, F_OK), 0, "no temporary file left");
}

Test(fcsim_snapshot, rejects_a_foreign_memory_file_and_garbage)
{
        struct fcsim_config c, back;
        struct ha_err err = { "" };
        sample(&c);
        cr_assert_eq(fcsim_snapshot_write(&c, snap, mem, &err), 0, "%s", err.msg);
        char mem2[160];
        snprintf(mem2, sizeof mem2, "%s/mem2", dir);
        char snap2[160];
        snprintf(snap2, sizeof snap2, "%s/snap2", dir);
        cr_assert_eq(fcsim_snapshot_write(&c, snap2, mem2, &err), 0);
        cr_assert_eq(fcsim_snapshot_read(snap, mem2, &back, &err), -EINVAL);
        cr_assert(strstr(err.msg, "does not belong") != NULL, "%s", err.msg);
        touch(snap2, "{\"fcsim_snapshot_version\": 99}");
        cr_assert_eq(fcsim_snapshot_read(snap2, mem, &back, &err), -EINVAL);
        touch(snap2, "not json");
        cr_assert_eq(fcsim_snapshot_read(snap2, mem, &back, &err), -EINVAL);
        cr_assert_eq(fcsim_snapshot_read("/nonexistent", mem, &back, &err), -ENOENT);
        /* The disk it names must still open. */
        unlink(disk);
        cr_assert_eq(fcsim_snapshot_read(snap, mem, &back, &err), -ENOENT);
}

Test(fcsim_snapshot, write_fails_cleanly_in_a_missing_directory)
{
        struct fcsim_config c;
        struct ha_err err = { "" };
        sample(&c);
        cr_assert_eq(fcsim_snapshot_write(&c, "/nonexistent/snap", mem, &err), -ENOENT);
        cr_assert_neq(access(mem, F_OK), 0, "the memory file is removed again");
}
