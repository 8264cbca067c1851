/*
 * test_passwd.c - user lookup without NSS (guest/passwd.c): names, uids,
 * supplementary groups, and lines that must not be trusted.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ga.h"

static char g_dir[64], g_passwd[96], g_group[96];

static void write_file(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
}

static void setup(void)
{
        char longline[3000];

        snprintf(g_dir, sizeof g_dir, "/tmp/ha-ga-passwd-%d-XXXXXX", (int)getpid());
        cr_assert_not_null(mkdtemp(g_dir));
        snprintf(g_passwd, sizeof g_passwd, "%s/passwd", g_dir);
        snprintf(g_group, sizeof g_group, "%s/group", g_dir);
        /* A line longer than the parser's 1024-byte buffer whose third
         * 1023-byte piece looks like an entry for "evil" (uid 0): it must
         * be skipped whole, not parsed from the middle. */
        memset(longline, 'x', 2046);
        snprintf(longline + 2046, sizeof longline - 2046, "evil:x:0:0::/:/bin/sh");
        FILE *f = fopen(g_passwd, "w");
        cr_assert_not_null(f);
        fputs("root:x:0:0:root:/root:/bin/sh\n", f);
        fputs("broken line without fields\n", f);
        fputs("bad:x:notanumber:0::/:/bin/sh\n", f);
        fputs(longline, f);
        fputs("\nuser:x:1000:1001:A User:/home/user:/bin/sh\n", f);
        fputs("last:x:2000:2000::/home/last:/bin/sh", f);         /* no final newline */
        fclose(f);
        write_file(g_group, "root:x:0:\nusers:x:1001:\nwheel:x:10:root,user\naudio:x:29:user\nother:x:30:root\n");
}

static void teardown(void)
{
        unlink(g_passwd);
        unlink(g_group);
        rmdir(g_dir);
}

TestSuite(ga_passwd, .init = setup, .fini = teardown);

Test(ga_passwd, finds_a_user_by_name_with_groups)
{
        struct ga_user u;

        cr_assert_eq(ga_user_lookup("user", g_passwd, g_group, &u), 0);
        cr_assert_eq(u.uid, 1000);
        cr_assert_eq(u.gid, 1001);
        cr_assert_str_eq(u.home, "/home/user");
        cr_assert_eq(u.n_groups, 2);
        cr_assert_eq(u.groups[0], 10);
        cr_assert_eq(u.groups[1], 29);
}

Test(ga_passwd, finds_a_user_by_uid)
{
        struct ga_user u;

        cr_assert_eq(ga_user_lookup("0", g_passwd, g_group, &u), 0);
        cr_assert_eq(u.uid, 0);
        cr_assert_str_eq(u.home, "/root");
        cr_assert_eq(ga_user_lookup("2000", g_passwd, g_group, &u), 0, "last line without newline");
        cr_assert_str_eq(u.home, "/home/last");
}

Test(ga_passwd, unknown_numeric_uid_is_accepted_as_is)
{
        struct ga_user u;

        cr_assert_eq(ga_user_lookup("4242", g_passwd, g_group, &u), 0);
        cr_assert_eq(u.uid, 4242);
        cr_assert_eq(u.gid, 4242);
        cr_assert_str_eq(u.home, "/");
        cr_assert_eq(u.n_groups, 0);
}

Test(ga_passwd, unknown_or_malformed_names_fail)
{
        struct ga_user u = { .uid = 7 };

        cr_assert_eq(ga_user_lookup("nobody-here", g_passwd, g_group, &u), -ENOENT);
        cr_assert_eq(ga_user_lookup("evil", g_passwd, g_group, &u), -ENOENT, "tail of a long line parsed");
        cr_assert_eq(ga_user_lookup("bad", g_passwd, g_group, &u), -ENOENT);
        cr_assert_eq(ga_user_lookup("a:b", g_passwd, g_group, &u), -EINVAL);
        cr_assert_eq(ga_user_lookup("", g_passwd, g_group, &u), -EINVAL);
        cr_assert_eq(ga_user_lookup("4294967295", g_passwd, g_group, &u), -ENOENT, "(uid_t)-1 is no uid");
        cr_assert_eq(u.uid, 7, "ret_ untouched on failure");
}

Test(ga_passwd, missing_file)
{
        struct ga_user u;

        cr_assert_eq(ga_user_lookup("user", "/nonexistent/passwd", g_group, &u), -ENOENT);
        cr_assert_eq(ga_user_lookup("12", "/nonexistent/passwd", g_group, &u), 0);
}
