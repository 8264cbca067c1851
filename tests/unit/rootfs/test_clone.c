/*
 * Tests of rootfs/clone.c on real files: /tmp (ext4 here, so the sparse
 * copy path) and a tiny tmpfs for the out-of-space path.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rootfs/rootfs.h"

#define MiB (1024 * 1024)

static char tdir[64];
static char images[128];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
        (void)sb;
        (void)flag;
        (void)ftw;
        return remove(p);
}

static void setup(void)
{
        snprintf(tdir, sizeof tdir, "/tmp/ha-rootfs-%d-XXXXXX", (int)getpid());
        cr_assert_not_null(mkdtemp(tdir));
        snprintf(images, sizeof images, "%s/images", tdir);
        cr_assert_eq(mkdir(images, 0755), 0);
}

static void teardown(void)
{
        /* A failed assertion may leave the test mounts in place. */
        const char *mounts[] = { "small", "xfs", NULL };
        for (int i = 0; mounts[i]; i++) {
                char p[256];
                snprintf(p, sizeof p, "%s/%s", tdir, mounts[i]);
                umount2(p, MNT_DETACH); /* the loop device is autoclear */
        }
        nftw(tdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* Writes |len| pseudo-random bytes at |off| of |fd|. */
static void write_data(int fd, off_t off, size_t len, uint32_t seed)
{
        char *buf = malloc(len);
        cr_assert_not_null(buf);
        for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245u + 12345u;
                buf[i] = (char)(seed >> 16);
        }
        cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len);
        free(buf);
}

/* A 64 MiB image with three data regions and holes between them. */
static void make_image(const char *name, off_t size)
{
        char p[256];
        snprintf(p, sizeof p, "%s/%s.ext4", images, name);
        int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, size), 0);
        write_data(fd, 0, 8192, 1);
        write_data(fd, 10 * MiB, 1 * MiB, 2);
        write_data(fd, size - 4096, 4096, 3);
        close(fd);
}

static uint64_t fnv_file(const char *p)
{
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        uint64_t h = 1469598103934665603ull;
        static uint64_t buf[65536 / 8];
        ssize_t n;
        /* FNV-1a over 64-bit words: enough to tell copies apart, and fast
         * on the 1 GiB image (the files here are multiples of 8 bytes). */
        while ((n = read(fd, buf, sizeof buf)) > 0)
                for (ssize_t i = 0; i < n / 8; i++)
                        h = (h ^ buf[i]) * 1099511628211ull;
        close(fd);
        return h;
}

/* Data extents as (start,end) pairs found by a SEEK_DATA/SEEK_HOLE walk. */
static int data_map(const char *p, off_t *map, int max)
{
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        off_t size = lseek(fd, 0, SEEK_END), pos = 0;
        int n = 0;
        while (pos < size && n < max) {
                off_t d = lseek(fd, pos, SEEK_DATA);
                if (d < 0)
                        break;
                off_t h = lseek(fd, d, SEEK_HOLE);
                map[2 * n] = d;
                map[2 * n + 1] = h;
                n++;
                pos = h;
        }
        close(fd);
        return n;
}

/* FNV-1a of the bytes in the given (start,end) ranges of |p|. */
static uint64_t fnv_ranges(const char *p, const off_t *map, int n)
{
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        uint64_t h = 1469598103934665603ull;
        static uint8_t buf[65536];
        for (int i = 0; i < n; i++) {
                for (off_t off = map[2 * i]; off < map[2 * i + 1];) {
                        size_t want = sizeof buf;
                        if ((off_t)want > map[2 * i + 1] - off)
                                want = (size_t)(map[2 * i + 1] - off);
                        ssize_t got = pread(fd, buf, want, off);
                        cr_assert_gt(got, 0);
                        for (ssize_t k = 0; k < got; k++)
                                h = (h ^ buf[k]) * 1099511628211ull;
                        off += got;
                }
        }
        close(fd);
        return h;
}

static int count_entries(const char *dir)
{
        DIR *d = opendir(dir);
        cr_assert_not_null(d);
        int n = 0;
        struct dirent *e;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        n++;
        closedir(d);
        return n;
}

/* Criterion runs no .fini after a skip: clean up first. */
#define skip_test(...)                          \
        do {                                    \
                teardown();                     \
                cr_skip_test(__VA_ARGS__);      \
        } while (0)

TestSuite(rootfs_clone, .init = setup, .fini = teardown);

Test(rootfs_clone, sparse_copy_keeps_holes_and_content)
{
        make_image("base", 64 * MiB);
        char src[256], dst[256];
        snprintf(src, sizeof src, "%s/base.ext4", images);
        snprintf(dst, sizeof dst, "%s/sbx1.ext4", tdir);

        struct rootfs_clone_info info;
        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_clone(images, "base", dst, &info, &e), 0, "%s", e.msg);

        struct stat s1, s2;
        cr_assert_eq(stat(src, &s1), 0);
        cr_assert_eq(stat(dst, &s2), 0);
        cr_assert_eq(s2.st_size, s1.st_size);
        cr_assert_eq(info.size, (uint64_t)s1.st_size);
        cr_assert_eq(s2.st_mode & 0777, 0600);
        /* Allocation: the clone may not be denser than the source (a
         * little filesystem metadata slack aside), far from 64 MiB. */
        cr_assert_leq(s2.st_blocks, s1.st_blocks + 64, "src %ld blocks, clone %ld",
                      (long)s1.st_blocks, (long)s2.st_blocks);
        cr_assert_lt(s2.st_blocks * 512, 4 * MiB);

        off_t m1[32], m2[32];
        int n1 = data_map(src, m1, 16), n2 = data_map(dst, m2, 16);
        cr_assert_eq(n1, n2);
        cr_assert_eq(memcmp(m1, m2, sizeof(off_t) * 2 * (size_t)n1), 0);
        cr_assert_eq(fnv_file(src), fnv_file(dst));

        if (info.method == ROOTFS_CLONE_SPARSE_COPY) {
                cr_assert_eq(info.extents, (uint64_t)n1);
                cr_assert_lt(info.bytes_copied, 4 * MiB);
                cr_assert_geq(info.bytes_copied, MiB + 8192 + 4096);
        }
        cr_assert_str_neq(rootfs_clone_method_name(info.method), "unknown");
        /* Nothing but the clone in the destination directory. */
        cr_assert_eq(count_entries(tdir), 2); /* images/ and sbx1.ext4 */

        cr_assert_eq(rootfs_remove(dst), 0);
        cr_assert_eq(access(dst, F_OK), -1);
        cr_assert_eq(rootfs_remove(dst), 0, "removing twice is fine");
}

Test(rootfs_clone, replaces_an_existing_destination)
{
        make_image("base", 8 * MiB);
        char src[256], dst[256];
        snprintf(src, sizeof src, "%s/base.ext4", images);
        snprintf(dst, sizeof dst, "%s/sbx2.ext4", tdir);
        int fd = open(dst, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, "stale", 5), 5);
        close(fd);

        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_clone(images, "base", dst, NULL, &e), 0, "%s", e.msg);
        cr_assert_eq(fnv_file(src), fnv_file(dst));
        cr_assert_eq(count_entries(tdir), 2, "no temporary left");
}

Test(rootfs_clone, unknown_image_is_enoent_with_name)
{
        char dst[256];
        snprintf(dst, sizeof dst, "%s/x.ext4", tdir);
        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_clone(images, "nosuch", dst, NULL, &e), -ENOENT);
        cr_assert(strstr(e.msg, "unknown image nosuch"), "%s", e.msg);
        cr_assert_eq(access(dst, F_OK), -1);
}

Test(rootfs_clone, bad_names_are_rejected_before_any_io)
{
        make_image("base", MiB);
        char dst[256];
        snprintf(dst, sizeof dst, "%s/x.ext4", tdir);
        const char *bad[] = { "../images/base", "base/../base", "/etc/passwd", "", ".base", NULL };
        for (int i = 0; bad[i]; i++) {
                struct ha_err e = { { 0 } };
                cr_assert_eq(rootfs_clone(images, bad[i], dst, NULL, &e), -EINVAL, "%s", bad[i]);
        }
        cr_assert_eq(access(dst, F_OK), -1);
}

Test(rootfs_clone, image_must_be_a_regular_file)
{
        char p[256], dst[256];
        snprintf(p, sizeof p, "%s/dir.ext4", images);
        cr_assert_eq(mkdir(p, 0755), 0);
        snprintf(dst, sizeof dst, "%s/x.ext4", tdir);
        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_clone(images, "dir", dst, NULL, &e), -EINVAL);
        cr_assert(strstr(e.msg, "not a regular file"), "%s", e.msg);
}

Test(rootfs_clone, missing_destination_directory_is_enoent)
{
        make_image("base", MiB);
        char dst[256];
        snprintf(dst, sizeof dst, "%s/nodir/x.ext4", tdir);
        struct ha_err e = { { 0 } };
        cr_assert_eq(rootfs_clone(images, "base", dst, NULL, &e), -ENOENT);
}

Test(rootfs_clone, out_of_space_is_enospc_and_leaves_nothing)
{
        if (geteuid() != 0)
                skip_test("needs root: mounts a tmpfs");
        /* 6 MiB of data into a 2 MiB tmpfs. */
        char p[256];
        snprintf(p, sizeof p, "%s/big.ext4", images);
        int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, 32 * MiB), 0);
        write_data(fd, 0, 6 * MiB, 7);
        close(fd);

        char mnt[256], dst[300];
        snprintf(mnt, sizeof mnt, "%s/small", tdir);
        cr_assert_eq(mkdir(mnt, 0755), 0);
        cr_assert_eq(mount("ha-rootfs-test", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m"), 0,
                     "mount tmpfs: %s", strerror(errno));
        snprintf(dst, sizeof dst, "%s/sbx.ext4", mnt);
        struct ha_err e = { { 0 } };
        int r = rootfs_clone(images, "big", dst, NULL, &e);
        int left = count_entries(mnt);
        struct statvfs sv;
        cr_assert_eq(statvfs(mnt, &sv), 0);
        umount2(mnt, MNT_DETACH);
        cr_assert_eq(r, -ENOSPC, "got %d: %s", r, e.msg);
        cr_assert(strstr(e.msg, "No space left"), "%s", e.msg);
        cr_assert_eq(left, 0, "a partial clone was left behind");
        cr_assert_eq(sv.f_bfree, sv.f_blocks, "space still held: %lu of %lu blocks free",
                     (unsigned long)sv.f_bfree, (unsigned long)sv.f_blocks);
}

/* Runs argv (no shell); returns the exit status. */
static int run(char *const argv[])
{
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                dup2(null, 1);
                execv(argv[0], argv);
                _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(rootfs_clone, reflink_on_xfs_and_sparse_copy_across_filesystems)
{
        if (geteuid() != 0)
                skip_test("needs root: loop mount");
        if (access("/usr/sbin/mkfs.xfs", X_OK) < 0)
                skip_test("mkfs.xfs missing (xfsprogs)");
        char img[256], mnt[256], ximages[300], dst[300], cross[300];
        snprintf(img, sizeof img, "%s/xfs.img", tdir);
        snprintf(mnt, sizeof mnt, "%s/xfs", tdir);
        int fd = open(img, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, 400 * MiB), 0);
        close(fd);
        char *mkfs[] = { "/usr/sbin/mkfs.xfs", "-q", "-m", "reflink=1", img, NULL };
        if (run(mkfs) != 0)
                skip_test("mkfs.xfs -m reflink=1 failed here");
        cr_assert_eq(mkdir(mnt, 0755), 0);
        char *mount_argv[] = { "/bin/mount", "-t", "xfs", "-o", "loop", img, mnt, NULL };
        if (run(mount_argv) != 0)
                skip_test("cannot loop-mount XFS here (no xfs module or loop devices)");

        /* A 1 GiB image with 40 MiB of data on the reflink filesystem,
         * flushed as a real base image would be (else FICLONE's own
         * writeback is what gets timed). */
        snprintf(ximages, sizeof ximages, "%s/images", mnt);
        cr_assert_eq(mkdir(ximages, 0755), 0);
        char p[320];
        snprintf(p, sizeof p, "%s/big.ext4", ximages);
        fd = open(p, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, 1024 * MiB), 0);
        for (int i = 0; i < 10; i++)
                write_data(fd, (off_t)i * 100 * MiB, 4 * MiB, (uint32_t)i);
        cr_assert_eq(fsync(fd), 0);
        close(fd);

        struct rootfs_clone_info ri, si;
        struct ha_err e = { { 0 } };
        snprintf(dst, sizeof dst, "%s/sbx.ext4", mnt);
        int r1 = rootfs_clone(ximages, "big", dst, &ri, &e);
        snprintf(cross, sizeof cross, "%s/cross.ext4", tdir);
        int r2 = rootfs_clone(ximages, "big", cross, &si, &e);
        /* Same extent map, and the same bytes in every data extent, means
         * the same content (the rest reads as zeros): hashing only the
         * extents keeps the 1 GiB comparison fast. */
        off_t m1[64], m2[64], m3[64];
        int n1 = data_map(p, m1, 32), n2 = data_map(cross, m2, 32), n3 = data_map(dst, m3, 32);
        uint64_t h_src = fnv_ranges(p, m1, n1), h_dst = fnv_ranges(dst, m1, n1),
                 h_cross = fnv_ranges(cross, m1, n1);

        char *umount_argv[] = { "/bin/umount", "-d", mnt, NULL };
        cr_assert_eq(run(umount_argv), 0, "umount failed");

        cr_assert_eq(r1, 0, "%s", e.msg);
        cr_assert_eq(ri.method, ROOTFS_CLONE_REFLINK);
        cr_assert_eq(ri.bytes_copied, 0);
        cr_assert_eq(r2, 0, "%s", e.msg);
        cr_assert_eq(si.method, ROOTFS_CLONE_SPARSE_COPY, "xfs -> ext4 cannot reflink");
        cr_assert_eq(si.bytes_copied, 40 * MiB);
        cr_assert_eq(h_src, h_dst);
        cr_assert_eq(h_src, h_cross);
        cr_assert_eq(n1, n2);
        cr_assert_eq(memcmp(m1, m2, sizeof(off_t) * 2 * (size_t)n1), 0);
        cr_assert_eq(n1, n3);
        cr_assert_eq(memcmp(m1, m3, sizeof(off_t) * 2 * (size_t)n1), 0);
        /* Figures for the benchmark notes. */
        fprintf(stderr, "rootfs bench: 1 GiB image (40 MiB data): reflink %llu us, sparse copy "
                        "%llu us (%llu extents)\n",
                (unsigned long long)ri.elapsed_us, (unsigned long long)si.elapsed_us,
                (unsigned long long)si.extents);
}
